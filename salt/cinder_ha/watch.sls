{#- Configure the cinder_ha_watch minion engine (drift of cinder.conf, cluster alerts) on
    this minion: <folder of the minion config>/minion.d/<engine_conf>. The engine starts with
    the minion: after the first change here, restart salt-minion once (a state cannot restart
    the minion that runs it reliably). Removed by cinder_ha.clean.

    Master side (once, then restart salt-master):
        signing_algorithm: PKCS1v15-SHA1
        reactor:
          - 'cinder_ha/*':
            - salt://cinder_ha/reactor/dispatch.sls
-#}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.alerts

{{ tplroot }}-watch-engine-config-managed:
  file.serialize:
    - name: {{ cinder_ha.engine_conf_path | json }}
    - serializer: yaml
    - makedirs: True
    - mode: '0644'
    - dataset:
        # the reactor acts only on events signed with this minion's key (README: trust model)
        minion_sign_messages: True
        engines:
          - cinder_ha_watch:
              paths:
                - {{ cinder_ha.cinder_conf.path | json }}
              alert_spool: {{ cinder_ha.alert_spool | json }}
    - require:
      - sls: {{ tplroot }}.alerts
{%- endif %}
