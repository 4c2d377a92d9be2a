"""The cinder-ha events: tags and fields, one schema for the engine, the module and the reactor."""
import re

CONF_TAG = "cinder_ha/conf/changed"          # engine: cinder.conf differs from what Salt wrote
RESOURCE_TAG = "cinder_ha/cluster/resource"  # engine: an alert of the cluster's alert agent
RECONFIGURE_TAG = "cinder_ha/reconfigure"    # never acted on: an operator command on the master
JOB_TAGS = (CONF_TAG, RESOURCE_TAG)          # the tags the reactor may start a job for

# What the alert agent writes (Pacemaker's CRM_alert_* variables); what a move record keeps.
ALERT_FIELDS = ("kind", "rsc", "task", "rc", "target_rc", "status", "desc", "node", "timestamp",
                "interval", "attribute_name", "attribute_value", "recipient")
MOVE_FIELDS = ALERT_FIELDS[:10]
FIELD_LIMIT = 256
RSC_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MINION_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,253}")


def clean_fields(raw, fields=MOVE_FIELDS):
    """
    Only ``fields`` of ``raw``, as short strings, or None when nothing usable is left or
    the resource name is not one. Event data come from the network: data, never commands.
    """
    if not isinstance(raw, dict):
        return None
    clean = {key: str(raw[key])[:FIELD_LIMIT] for key in fields if raw.get(key) is not None}
    if "rsc" in clean and not RSC_RE.fullmatch(clean["rsc"]):
        return None
    return clean or None


def conf_path_ok(path, conf_names):
    """An absolute path without ``..`` or empty parts whose file name is a known config name."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
        return False
    parts = path.split("/")
    return ".." not in parts and "" not in parts[1:] and parts[-1] in conf_names


def safe_minion_id(value):
    """A minion id fit for a log line or a target, else None."""
    return value if isinstance(value, str) and MINION_ID_RE.fullmatch(value) else None
