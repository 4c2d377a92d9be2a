#!py
"""
The master's reactor maps every cinder_ha/* tag to this file (see README, "Reactor trust model").

Nothing on the event bus says who sent an event: a minion can fire a batched load whose
events carry any id (masterapi.py, _minion_event). The reactor renders this file once per
event, in its own process and before any job exists. So the render itself drops, with
cinder_ha_lib.events.screen, every event that is not a signed load of a cinder_ha job tag,
recent (cinder_ha_reactor:max_age) and signed with the accepted key of the minion it names
(minion_sign_messages: True on the controllers): such an event renders to nothing, so no
runner job is queued and a flood cannot fill the reactor's worker pool. Its log line is
rate-limited: one per claimed sender per cinder_ha_reactor:drop_log_interval seconds, with
the number of drops it stands for.

What passes goes to the runner cinder_ha_reactor.react, which checks again, then applies
the allow list (default: the controllers by pillar), the replay cache and the rate limit,
and starts the job on that minion only:

    cinder_ha/conf/changed      (cinder_ha_watch engine) re-apply cinder_ha.config on that
                                minion, queued behind a running state (never dropped)
    cinder_ha/cluster/resource  (alert agent via the engine) cinder_ha_events.handle_move
                                on that minion: record the move, re-check after a start
    cinder_ha/reconfigure       dropped and logged: reconfiguring every controller is an
                                operator command on the master,
                                salt-run state.orchestrate cinder_ha.orch.reconfigure

The event goes to the runner as base64 of its JSON with the key order kept (the signature
covers the serialized load), without sig (passed apart) and _stamp (added by the master
after signing).
"""
import base64
import json
import logging
import os
import sys
import time

log = logging.getLogger("cinder_ha.reactor")


def _events():
    try:
        from cinder_ha_lib import events  # pylint: disable=import-outside-toplevel
    except ImportError:
        # formula mode: `salt-run saltutil.sync_all` put it in <extension_modules>/utils, which
        # Salt's loader puts on sys.path only while it loads a module (pip mode: importable)
        sys.path.append(os.path.join(__opts__["extension_modules"], "utils"))  # noqa: F821
        from cinder_ha_lib import events  # pylint: disable=import-outside-toplevel
    return events


def run():
    events = _events()
    conf = events.reactor_settings(__opts__)  # noqa: F821 - set by the py renderer
    algorithm = events.signing_algorithm(__opts__)  # noqa: F821

    def verify(view, sig):
        return events.signature_ok(events.accepted_key(__opts__, view["id"]), view, sig, algorithm)  # noqa: F821

    now = time.time()
    minion, reason = events.screen(tag, data, now, float(conf["max_age"]), verify)  # noqa: F821
    if reason is None:
        try:
            view = json.dumps(events.signed_view(data), sort_keys=False)  # noqa: F821
        except (TypeError, ValueError):
            reason = "event data is not JSON"
    if reason is not None:
        count = events.REACTOR_DROPS.note(minion or "(invalid id)", now, float(conf["drop_log_interval"]))
        if count is not None:
            log.warning("cinder_ha_reactor: %s from %s dropped before any job: %s (%d drop(s) from this sender "
                        "since its previous line; one line per %s s)", str(tag)[:64], minion or "(invalid id)",  # noqa: F821
                        reason, count, conf["drop_log_interval"])
        return {}
    return {
        "cinder_ha_react": {
            "runner.cinder_ha_reactor.react": [{
                "args": [
                    {"tag": tag},  # noqa: F821
                    {"event": base64.b64encode(view.encode("utf-8")).decode("ascii")},
                    {"sig": base64.b64encode(data["sig"]).decode("ascii")},  # noqa: F821
                ],
            }],
        },
    }
