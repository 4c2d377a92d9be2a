{#- The cinder_ha_watch engine's minion config written by cinder_ha.watch. A running engine
    stops with the next minion restart. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.clean.cluster

{{ tplroot }}-clean-watch-engine-config-absent:
  file.absent:
    - name: {{ cinder_ha.engine_conf_path | json }}
    - require:
      - sls: {{ tplroot }}.clean.cluster
{%- endif %}
