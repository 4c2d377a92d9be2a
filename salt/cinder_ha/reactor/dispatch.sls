{#- The master's reactor maps every cinder_ha/* tag to this file (see README, "Reactor trust model").

    Nothing on the event bus says who sent an event: a minion can fire a batched load whose
    events carry any id (master.py, _minion_event). So this file decides nothing itself: it
    hands every event, as data, to the runner cinder_ha_reactor.react, which holds the event
    schema (cinder_ha_lib.events) and starts a job only when the event is signed with the
    accepted key of the minion it names (minion_sign_messages: True on the controllers),
    recent and new, the minion is allowed (master option cinder_ha_reactor:allow, default
    the controllers by pillar) and within its rate limit; the job then targets that minion only.

    cinder_ha/conf/changed      (cinder_ha_watch engine) re-apply cinder_ha.config on that
                                minion, queued behind a running state (never dropped)
    cinder_ha/cluster/resource  (alert agent via the engine) cinder_ha_events.handle_move
                                on that minion: record the move, re-check after a start
    cinder_ha/reconfigure       dropped and logged: reconfiguring every controller is an
                                operator command on the master,
                                salt-run state.orchestrate cinder_ha.orch.reconfigure

    The event goes to the runner as base64 of its JSON with the key order kept (the
    signature covers the serialized load), without sig (passed apart) and _stamp (added
    by the master after signing).
-#}
{%- set view = {} %}
{%- for key, value in data.items() if key not in ('sig', '_stamp') %}
{%-   do view.update({key: value}) %}
{%- endfor %}
{%- set sig = data.get('sig') %}
cinder_ha_react:
  runner.cinder_ha_reactor.react:
    - args:
      - tag: {{ tag | json }}
      - event: {{ view | json(sort_keys=False) | base64_encode | json }}
      - sig: {{ (sig | base64_encode if sig else '') | json }}
