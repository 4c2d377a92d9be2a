{#- The cinder_ha_watch engine's minion config written by cinder_ha.watch. A running engine
    stops with the next minion restart. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import check, cinder_ha with context %}
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
