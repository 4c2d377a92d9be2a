{#- First state of the formula: the whole pillar is checked before anything changes.
    Every other state of cinder_ha requires this one. #}
cinder_ha pillar is valid:
  cinder_ha.pillar_valid: []
