"""
Pacemaker cluster configuration and operation for the cinder-ha formula.

Reads go through Pacemaker's C tools (``cibadmin -Q``, ``crm_mon``, ``crm_resource``,
``crm_verify``, ``crm_simulate``: 10-25 ms each). A state run reads the cluster once: the
CIB once (``cache_token``), ``crm_mon`` and ``crm_node --name`` once (``reuse``), all three
side by side while the formula renders (``crm.role(for_state_run=True)``); any change made
through this module drops what was read.
A set of objects is written as ONE CIB patch (``crm_diff`` + ``cibadmin --patch`` on stdin)
that carries the epoch it was computed against: a concurrent writer makes it fail
("Update was older than existing configuration") and it is re-read, re-compared and
retried, so several minions applying at once end with one copy of each object. crmsh
(``crm``) is used for operator actions (restart); it is not used to load configuration
because its XML loader re-parses values as shell-like text and rejects or mangles a value
holding both quote kinds.

Honours ``CIB_file`` in the environment (an offline CIB), like the tools themselves.

CLI Example:

.. code-block:: bash

    salt '*' crm.status
    salt '*' crm.show p_cinder-api
    salt '*' crm.restart p_cinder-api
"""
import copy
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

from cinder_ha_lib import cib, secret_rule

log = logging.getLogger(__name__)

__virtualname__ = "crm"

# The C tools this module runs (crmsh's `crm` is never run: reads and writes go through these).
TOOLS = ("cibadmin", "crm_resource", "crm_mon", "crm_verify", "crm_simulate", "crm_diff", "crm_attribute",
         "crm_node")
# What cibadmin says when the CIB moved on since it was read (re-read and retry).
CONFLICT_MARKERS = ("older than existing", "application of an update diff failed", "diff_resync")
PATCH_CONFLICT_RCS = (103, 205, 206)
# How old a crm_mon snapshot or node name may be when a state run reuses it (``reuse=True``):
# it was taken earlier in the same run (crm.role while the formula renders), and a change made through this
# module drops it at once.
RUN_REUSE = 10
CIB_QUERY = ["cibadmin", "--query"]
CRM_MON = ["crm_mon", "--one-shot", "--output-as=xml", "--inactive"]
CRM_NODE_NAME = ["crm_node", "--name"]


def __virtual__():
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=_env()["PATH"])]
    if missing:
        return (False, f"Pacemaker CLI tools not found: {', '.join(missing)} "
                       "(install pacemaker-cli-utils)")
    return __virtualname__



def _env():
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}
    for name in ("CIB_file", "CIB_shadow", "CIB_shadow_dir"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def _count(args):
    __context__["crm.subprocesses"] = __context__.get("crm.subprocesses", 0) + 1
    tool = " ".join(args[:2])  # e.g. "cibadmin --query": never a value (those come later, or on stdin)
    counted = __context__.get("crm.tools", {})
    __context__["crm.tools"] = {**counted, tool: counted.get(tool, 0) + 1}  # a new dict: runs copy __context__


def _run(args, stdin=None, timeout=60):
    """Run one cluster tool (argument list, no shell); counted for the bench and the tests."""
    _count(args)
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=_env(), check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"{args[0]} timed out after {timeout} s")
    proc.stdout = cib.strip_ansi(proc.stdout)
    proc.stderr = cib.strip_ansi(proc.stderr)
    return proc


def _start(args):
    """Start one read-only cluster tool without waiting for it (argument list, no shell), counted."""
    _count(args)
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _finish(args, proc, timeout):
    """Wait for a tool ``_start`` started: its CompletedProcess (rc 124 when it timed out, killed)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return subprocess.CompletedProcess(args, 124, "", f"{args[0]} timed out after {timeout} s")
    return subprocess.CompletedProcess(args, proc.returncode, cib.strip_ansi(stdout), cib.strip_ansi(stderr))


def _run_together(commands, timeout=30):
    """Run read-only cluster tools at the same time (argument lists, no shell): the wait is the
    slowest one's, not their sum. Returns their CompletedProcess in the same order."""
    deadline = time.monotonic() + timeout
    started = [_start(args) for args in commands]
    return [_finish(args, proc, max(deadline - time.monotonic(), 0.1)) for args, proc in zip(commands, started)]


def _fail(message):
    from salt.exceptions import CommandExecutionError

    raise CommandExecutionError(message)


def _output(proc):
    return "\n".join(part.strip() for part in (proc.stderr, proc.stdout) if part.strip())


def _cache_key():
    return "crm.cib:" + (os.environ.get("CIB_file") or os.environ.get("CIB_shadow") or "live")


def _read_cib(refresh=True, cache_token=None):
    """
    The whole CIB as XML text (``cibadmin -Q``). With ``cache_token`` (states pass their run
    id), the text is read once and reused for every call with the same token. Private: in
    plain secret mode the CIB holds passwords (``crm.show`` masks them).
    """
    key = _cache_key()
    cached = __context__.get(key)
    if not refresh and cache_token is not None and cached and cached[0] == cache_token:
        return cached[1]
    early = _reused(_early_cib_key(), reuse=not refresh and cache_token is not None)
    __context__.pop(_early_cib_key(), None)  # taken once, by the first state of the run
    if early is not None:
        __context__[key] = (cache_token, early)
        return early
    proc = _run(CIB_QUERY, timeout=30)
    if proc.returncode != 0:
        _fail(f"cibadmin --query failed (rc {proc.returncode}): {_output(proc)}")
    __context__[key] = (cache_token, proc.stdout)
    return proc.stdout


def _early_cib_key():
    return "crm.cib.early:" + _cache_key()


def _forget_cib():
    """Drop what this run read: the CIB and the crm_mon snapshot (after a change, or a wait)."""
    __context__.pop(_cache_key(), None)
    __context__.pop(_early_cib_key(), None)
    __context__.pop(_status_key(), None)
    _drop_early_status()


def _status_key():
    return "crm.status:" + _cache_key()


def _reused(key, reuse):
    """The value kept under ``key`` when ``reuse`` and it is at most RUN_REUSE seconds old."""
    kept = __context__.get(key)
    if reuse and kept and time.monotonic() - kept[0] <= RUN_REUSE:
        return kept[1]
    return None


def _masked_params(params):
    secret_name = secret_rule.is_secret_name
    return {name: (value if value == cib.LRM_VALUE or not secret_name(name) else cib.MASK)
            for name, value in params.items()}


def show(object_id, cache_token=None):
    """
    One object (primitive, group, colocation, order, property set) as a normalized
    structure; parameters whose name says secret are shown as ``***``. None when absent.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.show p_cinder-api
    """
    obj = cib.find_object(cib.parse_cib(_read_cib(refresh=cache_token is None, cache_token=cache_token)),
                             object_id)
    if obj and obj["tag"] == "primitive":
        obj = dict(obj, agent=cib.agent_name(obj), params=_masked_params(obj["params"]))
    return obj


# ---------------------------------------------------------------- lrm secrets: the digest attribute and rule

# (the secret files and their digest are crm_secrets': this module writes what the CIB holds)

def _node_attribute_query(node, name):
    proc = _run(["crm_attribute", "--node", node, "--name", name, "--lifetime", "forever", "--query",
                 "--quiet"], timeout=30)
    if proc.returncode == 0:
        return proc.stdout.strip()
    if proc.returncode in (6, 105) or "No such device" in _output(proc):
        return None  # not set
    _fail(f"crm_attribute --query of {name} on {node} failed (rc {proc.returncode}): {_output(proc)}")


def publish_secrets_digest(rsc, digest, node=None, test=False, cache_token=None, retries=6):
    """
    Publish on ``node`` (this node by default) the permanent node attribute
    ``cinder_ha_secrets_<rsc>`` = ``digest`` (``crm_secrets.digest`` of the secrets this node
    holds; call it once the secret files are written). A ``secrets_of`` location rule keeps the
    resource off, and unprobed on, every node whose attribute is missing or not accepted.

    A rotation never makes this node ineligible: in the same CIB transaction, each secrets rule
    on the attribute that does not accept ``digest`` yet is extended with it when this node is
    eligible now; a node that is not eligible now extends nothing (the controller accepts its
    digest, or not). Digests no node publishes any more leave the rules. Returns ``{"node",
    "attribute", "old", "new", "changed", "eligible", "rules": {location id: accepted digests}}``.

    CLI Example:

    .. code-block:: bash

        salt n2 crm.publish_secrets_digest p_cinder-api 3f5a...e1   # the crm_secrets.present state does this
    """
    try:
        cib._check_id(rsc, "resource")
    except cib.ModelError as exc:
        _fail(str(exc))
    if not isinstance(digest, str) or not digest.strip():
        _fail(f"{rsc}: digest must be a non-empty string")
    node = node or node_name()
    attribute = cib.secrets_attribute(rsc)
    seen = {}

    def build(parsed):
        objects, eligible = cib.node_publication(parsed, attribute, node, digest)
        seen.update(old=cib.published_digests(parsed, attribute).get(node), eligible=eligible,
                    rules={obj["id"]: cib.accepted_digests(obj) for obj in objects if obj["tag"] == "location"})
        steps = cib.plan(objects, parsed)
        if not steps:
            return steps, None, []
        try:
            return steps, cib.apply_objects(parsed["root"], objects, parsed), []
        except cib.ModelError as exc:
            raise _Rejected(str(exc)) from None

    try:
        outcome = _transaction(build, test, cache_token, retries)
    except _Rejected as exc:
        _fail(f"{attribute} not published on {node}: {exc}")
    if outcome["result"] is False:
        _fail(f"{attribute} not published on {node}: {outcome['comment']}")
    return {"node": node, "attribute": attribute, "old": seen.get("old"), "new": digest,
            "changed": bool(outcome["changes"]), "eligible": seen.get("eligible", True),
            "rules": seen.get("rules", {}), "actions": outcome.get("actions", [])}


def _secret_values(objects):
    return [obj["params"][name] for obj in objects if obj["tag"] == "primitive"
            for name in obj.get("secret_params", ())]


# ---------------------------------------------------------------- checks before writing

def _agent_problems(objects):
    """Missing agents (named with their path) and parameters the agent does not declare."""
    problems = []
    for obj in objects:
        if obj["tag"] != "primitive" or obj["class"] != "ocf":
            continue
        agent = cib.agent_name(obj)
        key = "crm.metadata:" + agent
        if key not in __context__:
            if not os.path.exists(cib.agent_path(obj)):
                __context__[key] = None
            else:
                proc = _run(["crm_resource", "--show-metadata", agent], timeout=30)
                __context__[key] = cib.parse_metadata(proc.stdout) if proc.returncode == 0 else proc
        meta = __context__[key]
        if meta is None:
            problems.append(f"{obj['id']}: agent {agent} not found: {cib.agent_path(obj)} does not exist")
        elif isinstance(meta, subprocess.CompletedProcess):
            problems.append(f"{obj['id']}: agent {agent} ({cib.agent_path(obj)}) gave no valid "
                            f"meta-data: {_output(meta)}")
        else:
            unknown = sorted(set(obj["params"]) - set(meta["parameters"]))
            if unknown:
                problems.append(f"{obj['id']}: agent {agent} has no parameter {', '.join(unknown)} "
                                f"(it declares: {', '.join(meta['parameters'])})")
    return problems


def _verify_file(path):
    proc = _run(["crm_verify", "--xml-file", path, "-VV"], timeout=60)
    if proc.returncode == 124:  # _run's timeout: an unchecked candidate is not a valid one
        return [f"crm_verify did not finish: {_output(proc)}"], []
    errors, warnings = cib.verify_messages(_output(proc), path)
    # rc 78 also means "warnings only"; errors are what crm_verify calls errors.
    if proc.returncode != 0 and not errors and "Errors found" in _output(proc):
        errors = [_output(proc)]
    return errors, warnings


def _check_file(new_path, old_path, secrets):
    """crm_verify on a candidate CIB: (errors, warnings the change brings), secrets masked.

    What the CIB already holds is not the change's doing: offline CIBs warn about quorum and
    fencing, and a resource's recorded hard failure (status section) is an "error" of every
    candidate. Such errors are reported as warnings, so one failed resource never blocks the
    change that may fix it."""
    errors, warnings = _verify_file(new_path)
    unchecked = [e for e in errors if e.startswith("crm_verify did not finish")]
    if unchecked:  # a candidate nobody checked is never accepted, whatever the old CIB says
        return unchecked, warnings
    if warnings or errors:
        old_errors, old_warnings = _verify_file(old_path)
        warnings = [w for w in warnings if w not in old_warnings]
        warnings += [f"already in the CIB before this change: {e}" for e in errors if e in old_errors]
        errors = [e for e in errors if e not in old_errors]
    mask = cib.mask
    return [mask(e, secrets) for e in errors], [mask(w, secrets) for w in warnings]


def _predict(path):
    """What the cluster would do with this CIB (crm_simulate on the file, status included)."""
    proc = _run(["crm_simulate", "--xml-file", path, "--simulate"], timeout=60)
    if proc.returncode != 0:
        return [f"crm_simulate failed: {_output(proc)}"]
    return cib.transition_summary(proc.stdout)


def _patch(old_path, new_path):
    """One CIB transaction: the diff between the read CIB and the candidate, checked by epoch."""
    diff = _run(["crm_diff", "--original", old_path, "--new", new_path], timeout=30)
    if diff.returncode == 0:
        return "unchanged", ""
    if diff.returncode != 1:
        return "error", f"crm_diff failed (rc {diff.returncode}): {_output(diff)}"
    proc = _run(["cibadmin", "--patch", "--xml-pipe"], stdin=diff.stdout, timeout=60)
    if proc.returncode == 0:
        return "done", ""
    text = _output(proc)
    if proc.returncode in PATCH_CONFLICT_RCS or any(m in text.lower() for m in CONFLICT_MARKERS):
        return "conflict", text
    return "error", f"cibadmin --patch failed (rc {proc.returncode}): {text}"


def _transaction(build, test, cache_token, retries, on_commit=None, after_commit=None):
    """
    Read, plan, check and commit, retrying on a concurrent write. ``build(parsed)`` returns
    (steps, candidate_root or None, secrets). ``on_commit(parsed)`` runs right before the
    patch (secret files the new CIB needs), ``after_commit(parsed)`` only once the patch is in
    (secret files the old CIB needed). Returns the result dict of configure/delete.
    """
    result = {"result": True, "changes": {}, "comment": "", "actions": [], "warnings": [], "attempts": 0}
    for attempt in range(1, retries + 1):
        result["attempts"] = attempt
        text = _read_cib(refresh=attempt > 1 or cache_token is None, cache_token=cache_token)
        parsed = cib.parse_cib(text)
        steps, candidate, secrets = build(parsed)
        result["changes"] = {step["id"]: dict(step["changes"], **{"action": step["action"]}) for step in steps}
        if not steps:
            result["comment"] = "already configured" if attempt == 1 else \
                "already configured (written by a concurrent writer)"
            return result
        if not any(step.get("cib", True) for step in steps):
            # Only lrm secret files differ: nothing for the CIB, nothing for the cluster to do.
            if test:
                result.update(result=None, comment="would update secret files (the CIB already says lrm://)")
            else:
                on_commit(parsed)
                result["comment"] = "secret files updated (the agent reads them on its next action)"
            return result
        workdir = tempfile.mkdtemp(prefix="crm-")  # 0700: candidate CIBs may hold plain secrets
        try:
            old_path, new_path = os.path.join(workdir, "old.xml"), os.path.join(workdir, "new.xml")
            with open(old_path, "w", encoding="utf-8") as handle:
                handle.write(text)
            with open(new_path, "w", encoding="utf-8") as handle:
                handle.write(cib.to_xml(candidate))
            errors, warnings = cib.expected_verify_errors(steps, *_check_file(new_path, old_path, secrets))
            result["warnings"] = warnings
            if errors:
                result.update(result=False, comment="CIB left unchanged: crm_verify rejects the change:\n  "
                              + "\n  ".join(errors))
                return result
            result["actions"] = [cib.mask(a, secrets) for a in _predict(new_path)]
            if test:
                result.update(result=None, comment="would change the CIB")
                return result
            if on_commit:
                on_commit(parsed)
            outcome, message = _patch(old_path, new_path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        _forget_cib()
        if outcome in ("done", "unchanged"):
            result["comment"] = "CIB updated in one transaction" if outcome == "done" else "already configured"
            if outcome == "unchanged":
                result["changes"] = {}
            elif after_commit:
                after_commit(parsed)
            return result
        if outcome == "error":
            result.update(result=False, changes={}, comment=cib.mask(message, secrets))
            return result
        log.info("crm: concurrent CIB change (attempt %s of %s), re-reading", attempt, retries)
        time.sleep(random.uniform(0.05, 0.3 * attempt))
    result.update(result=False, changes={}, comment=f"CIB kept changing under us: gave up after {retries} attempts")
    return result


def _local_secret_attributes(desired, node, reuse=False):
    """
    For each ``secrets_of`` location: THIS node's digest attribute, set in the same patch as
    the rule. This node holds the secrets (configure writes them here before committing), and
    publishing its new digest separately, before or after the rule, would leave it ineligible
    for a moment: Pacemaker would stop the resource here on every password change.
    """
    wanted = {}
    for obj in desired:
        if obj["tag"] == "location" and obj.get("secrets_digest"):
            wanted[obj["secrets_attribute"]] = obj["secrets_digest"]
    if not wanted:
        return []
    node = node or node_name(reuse=reuse)
    return [cib.node_attribute(node, name, digest) for name, digest in sorted(wanted.items())]


def configure(objects, test=False, secrets_dir=None, cache_token=None, retries=6, node=None):
    """
    Make the CIB hold ``objects`` (the formula's object list, see ``crm.configured``) in ONE
    transaction. Returns ``{"result", "changes": {id: {path: {old, new}}}, "comment",
    "actions": [what the cluster will do], "warnings"}``; secrets appear only as ``***``.
    With ``test=True`` nothing is written; ``actions`` come from ``crm_simulate`` on a copy.
    A ``location`` with ``secrets_of`` also sets this node's (``node``'s) digest attribute in
    the same transaction.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.configure '[{primitive: p_x, agent: Dummy, params: {fake: 1}}]' test=True
    """
    try:
        desired = cib.normalize_objects(
            objects, digest=lambda rsc, values: __salt__["crm_secrets.digest"](rsc, values, secrets_dir=secrets_dir))
    except cib.ModelError as exc:
        return {"result": False, "changes": {}, "comment": f"invalid objects: {cib.mask(str(exc), [])}",
                "actions": [], "warnings": []}
    secrets = _secret_values(desired)
    desired = desired + _local_secret_attributes(desired, node, reuse=cache_token is not None)
    signs = _held_signs(desired, secrets_dir)
    # Agent checks cost a subprocess each: only when something is to change.
    checked = {}

    def build(parsed):
        wanted = cib.with_accepted_digests(desired, parsed, lambda resources: _holders(parsed, resources))
        steps = cib.plan(wanted, parsed, signs)
        if not steps:
            return steps, None, secrets
        if "problems" not in checked:
            checked["problems"] = _agent_problems([d for d in wanted if any(s["id"] == d["id"] for s in steps)])
        if checked["problems"]:
            raise _Rejected("; ".join(checked["problems"]))
        try:
            return steps, cib.apply_objects(parsed["root"], wanted, parsed), secrets
        except cib.ModelError as exc:
            raise _Rejected(str(exc)) from None

    try:
        result = _transaction(build, test, cache_token, retries,
                              on_commit=lambda parsed: _store_secret_files(desired, signs, secrets_dir))
    except _Rejected as exc:
        return {"result": False, "changes": {}, "actions": [], "warnings": [],
                "comment": "CIB left unchanged: " + cib.mask(str(exc), secrets)}
    return result


class _Rejected(Exception):
    pass


def _held_signs(desired, secrets_dir):
    """{(rsc, param): md5 this node holds or None} of the lrm primitives (crm_secrets.signs)."""
    lrm = [obj for obj in desired if obj["tag"] == "primitive" and obj.get("secret_mode") == "lrm"]
    if not lrm:
        return {}
    held = __salt__["crm_secrets.signs"](lrm, secrets_dir=secrets_dir)
    return {(rsc, name): sign for rsc, names in held.items() for name, sign in names.items()}


def _store_secret_files(desired, signs, secrets_dir):
    """Right before the patch: the lrm secret files the new CIB needs, where they differ."""
    for obj in desired:
        if obj["tag"] != "primitive" or obj.get("secret_mode") != "lrm":
            continue
        values = {name: obj["params"][name] for name in obj["secret_params"] if name in obj["params"]}
        if any(signs.get((obj["id"], name)) != cib.md5_hex(value) for name, value in values.items()):
            __salt__["crm_secrets.store"](obj["id"], values, secrets_dir=secrets_dir)


def _holders(parsed, resources):
    """Nodes where any of ``resources`` is placed (started, starting, failed...), as of the CIB
    ``parsed`` holds: crm_mon on that very text, so the answer and the patch agree (a status
    change meanwhile makes the patch conflict, and the plan is made again)."""
    workdir = tempfile.mkdtemp(prefix="crm-")
    try:
        path = os.path.join(workdir, "cib.xml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(cib.to_xml(parsed["root"]))
        _count(CRM_MON)
        proc = subprocess.run(CRM_MON, capture_output=True, text=True, timeout=30, check=False,
                              env=dict(_env(), CIB_file=path))
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess(CRM_MON, 124, "", "crm_mon timed out")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if proc.returncode != 0:
        raise _Rejected(f"where the resources guarded by an lrm secrets rule run is unknown (crm_mon rc "
                        f"{proc.returncode}: {_output(proc)}): the rule is left as it is")
    placed = cib.crm_mon_status(cib.strip_ansi(proc.stdout))["resources"]
    return sorted({node for rsc in resources for node in (placed.get(rsc) or {}).get("nodes", [])})


def simulate(objects, secrets_dir=None):
    """
    What applying ``objects`` would change and what the cluster would then do
    (``crm_simulate`` on a copy of the live CIB). Writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.simulate '[{primitive: p_x, agent: Dummy, params: {fake: 2}}]'
    """
    return configure(objects, test=True, secrets_dir=secrets_dir)


def delete(object_ids, test=False, cache_token=None, retries=6, secrets_dir=None):
    """
    Remove objects (and the constraints naming them) in one transaction; Pacemaker stops a
    removed running resource. Secret files of removed primitives are deleted too.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.delete '[p_x, c_x]'
    """
    if isinstance(object_ids, str):
        object_ids = [object_ids]

    def build(parsed):
        present = [oid for oid in object_ids if cib.find_object(parsed, oid)]
        return cib.deletion_steps(parsed, present), (cib.remove_objects(parsed["root"], present) if present else None), []

    def drop_secrets(parsed):
        for oid in object_ids:
            if not test and cib.find_object(parsed, oid):
                __salt__["crm_secrets.remove"](oid, secrets_dir=secrets_dir)

    # after the patch: a failed delete leaves the resource in the CIB, and its secret with it
    return _transaction(build, test, cache_token, retries, after_commit=drop_secrets)


# ---------------------------------------------------------------- cluster state and operations

def verify():
    """
    ``crm_verify -L``: ``{"valid": bool, "errors": [...], "warnings": [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.verify
    """
    proc = _run(["crm_verify", "--live-check", "-VV"], timeout=60)
    errors, warnings = cib.verify_messages(_output(proc))
    if proc.returncode != 0 and not errors and "Errors found" in _output(proc):
        errors = [_output(proc)]
    return {"valid": not errors, "errors": errors, "warnings": warnings}


def status(reuse=False):
    """
    ``crm_mon --output-as=xml`` as ``{"dc", "nodes": {...}, "resources": {id: {role, nodes,...}}}``.
    Every read is kept for the run; ``reuse=True`` (the formula's states) takes the one this
    run already made instead of running ``crm_mon`` again, when it is at most ``RUN_REUSE``
    seconds old and no change went through this module since. The default reads afresh.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.status
    """
    kept = _reused(_status_key(), reuse)
    if kept is None and reuse:
        kept = _take_early_status()
    if kept is not None:
        return copy.deepcopy(kept)
    _drop_early_status()
    return copy.deepcopy(_keep_status(_run(CRM_MON, timeout=30)))


def _keep_status(proc):
    if proc.returncode != 0:
        _fail(f"crm_mon failed (rc {proc.returncode}): {_output(proc)}")
    parsed = cib.crm_mon_status(proc.stdout)
    __context__[_status_key()] = (time.monotonic(), parsed)
    return parsed


def locate(rsc, reuse=False):
    """
    Names of the nodes where ``rsc`` runs ([] when stopped). ``reuse``: see ``crm.status``.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.locate p_cinder-api
    """
    resource = status(reuse=reuse)["resources"].get(rsc)
    if resource is None:
        _fail(f"resource {rsc} is not in the cluster")
    return resource["nodes"] if resource["active"] else []


def failures():
    """
    Failed resource actions from ``crm_mon`` (empty list when none).

    CLI Example:

    .. code-block:: bash

        salt '*' crm.failures
    """
    return status()["failures"]


def node_name(reuse=False):
    """
    This node's name in the cluster (``crm_node --name``; the host name when Pacemaker does not
    answer). ``reuse``: the name this run already read (see ``crm.status``).

    CLI Example:

    .. code-block:: bash

        salt '*' crm.node_name
    """
    kept = _reused("crm.node_name", reuse)
    if kept is not None:
        return kept
    return _keep_node_name(_run(CRM_NODE_NAME, timeout=15))


def _keep_node_name(proc):
    name = proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else socket.gethostname()
    __context__["crm.node_name"] = (time.monotonic(), name)
    return name


def is_dc():
    """
    True when this node is the cluster's Designated Controller.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.is_dc
    """
    return status()["dc"] == node_name()


def role(for_state_run=False):
    """
    This node's part in the cluster, without raising: ``{"running": bool, "node": name,
    "dc": name or None, "is_dc": bool, "error": str or None}``. ``running`` is False when
    Pacemaker does not answer on this node; ``dc`` is None during an election. Reads
    ``crm_node --name`` and the CIB (its ``dc-uuid``) at the same time, afresh.

    ``for_state_run`` (cinder_ha.controller, while the formula renders): the run's states reuse what this
    read (``reuse``, see ``crm.status``): the CIB is kept for the first CIB state
    (``crm.configured``...) and ``crm_mon`` starts in the background for the first status
    read, each taken at most ``RUN_REUSE`` seconds later and only if no change went through
    this module since. A write still carries the epoch it was computed against: a CIB changed
    meanwhile is re-read.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.role
    """
    if for_state_run:
        _start_early_status()
    node_proc, cib_proc = _run_together([CRM_NODE_NAME, CIB_QUERY])
    node = _keep_node_name(node_proc)
    if cib_proc.returncode != 0:
        _forget_cib()
        return {"running": False, "node": node, "dc": None, "is_dc": False,
                "error": f"cibadmin --query failed (rc {cib_proc.returncode}): {_output(cib_proc)}"}
    if for_state_run:
        __context__[_early_cib_key()] = (time.monotonic(), cib_proc.stdout)
    dc = cib.current_dc(cib_proc.stdout)
    return {"running": True, "node": node, "dc": dc, "is_dc": bool(dc) and dc == node, "error": None}


def _start_early_status():
    _drop_early_status()
    __context__[_early_status_key()] = (time.monotonic(), _start(CRM_MON))


def _early_status_key():
    return "crm.status.early:" + _cache_key()


def _drop_early_status():
    kept = __context__.pop(_early_status_key(), None)
    if kept:
        kept[1].kill()
        kept[1].communicate()


def _take_early_status():
    """The crm_mon started by ``role(for_state_run=True)``, parsed, if still recent (else None)."""
    kept = __context__.pop(_early_status_key(), None)
    if not kept:
        return None
    started, proc = kept
    done = _finish(CRM_MON, proc, 30)
    if done.returncode == 124 or time.monotonic() - started > RUN_REUSE:
        return None  # timed out, or too old: the caller reads afresh
    return _keep_status(done)


def _resource_call(args, what, timeout=60):
    proc = _run(args, timeout=timeout)
    _forget_cib()  # an operator action: what this run read is history
    if proc.returncode != 0:
        _fail(f"{what} failed (rc {proc.returncode}): {_output(proc)}")
    return _output(proc)


def wait(timeout="60s"):
    """
    Wait until the cluster has nothing left to do (``crm_resource --wait``). True when settled.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.wait timeout=120s
    """
    return _settle(timeout)


def _settle(timeout):
    seconds = max(1, (cib.duration_ms(timeout) or 60000) // 1000)
    proc = _run(["crm_resource", "--wait", f"--timeout={seconds}s"], timeout=seconds + 15)
    _forget_cib()  # the cluster moved on while we waited
    return proc.returncode == 0


def restart(rsc, wait=True, timeout="120s", cloned=None, only_here=False, after_absent=None, move_first=None):
    """
    Restart ``rsc`` through the cluster (stop, then start where the cluster places it), e.g.
    after its configuration file changed. With ``wait`` returns once it is running again.

    cloned
        The shape another node's apply is giving ``rsc`` right now (True: a clone's instance,
        False: a primitive of its own), e.g. the controller switching ``volume:mode``: the
        restart first waits, up to ``timeout``, for the CIB to show it (a restart in the old
        shape waits for a resource the switch renames, until it times out).
    after_absent
        Ids the controller's apply is removing right now (balanced mode's HAProxy clone, when
        the mode changes away from it): the restart first waits, up to ``timeout``, until none
        is in the CIB (removed once stopped: the address they held is free again).
    only_here
        Restart only if ``rsc`` still runs on this node once it has that shape (a switch out of a
        clone stops every instance but one: the other nodes have nothing left to restart).
        Returns ``{"restarted": None, ...}`` then.
    move_first
        For a clone's instance: resources moved off this node before it stops
        (``rolling_restart``'s).

    CLI Example:

    .. code-block:: bash

        salt '*' crm.restart p_cinder-api
    """
    seconds = (cib.duration_ms(timeout) or 120000) // 1000

    def in_clone():
        return cib.clone_of(cib.parse_cib(_read_cib()), rsc) is not None

    deadline = time.monotonic() + seconds
    while cloned is not None and in_clone() != bool(cloned):
        if time.monotonic() >= deadline:
            _fail(f"{rsc} is {'not yet' if cloned else 'still'} a clone's instance after {seconds} s: the "
                  "controller's apply has not switched it; the next apply restarts it")
        time.sleep(2)
    while after_absent and any(cib.find_object(cib.parse_cib(_read_cib()), oid) for oid in after_absent):
        if time.monotonic() >= deadline:
            _fail(f"{', '.join(after_absent)} still in the CIB after {seconds} s: the controller's apply has not "
                  f"removed them; the next apply restarts {rsc}")
        time.sleep(2)
    if only_here:
        _forget_cib()
        if node_name() not in locate(rsc):
            return {"restarted": None, "nodes": locate(rsc)}
    if in_clone():
        # an instance of a clone (cluster:mode cloned): this node's only, one node at a time
        return rolling_restart(rsc, timeout=f"{max(seconds, 300)}s", move_first=move_first)
    # Stopped through target-role, then the original target-role back, waiting on ``rsc`` alone.
    # Not crm_resource --restart: it compares the whole cluster's active resources with what it
    # computed at its start, so resources another node's apply creates meanwhile (the clone of
    # a volume:mode switch) keep it waiting until it times out (rc 124, seen live). A transition
    # still running is let finish first, and a restart that fails or is cut off never leaves the
    # resource stopped (the original target-role comes back).
    _settle(f"{seconds}s")
    deadline = time.monotonic() + seconds
    original = _run(["crm_resource", "--resource", rsc, "--meta", "--get-parameter", "target-role"], timeout=30)
    had_role = original.returncode == 0 and original.stdout.strip() not in ("", "(null)")
    try:
        _resource_call(["crm_resource", "--resource", rsc, "--meta", "--set-parameter", "target-role",
                        "--parameter-value", "Stopped"], f"stop of {rsc} for its restart", timeout=30)
        _wait_for(lambda: not locate(rsc), deadline, f"{rsc} to stop for its restart")
    finally:
        if had_role:
            _run(["crm_resource", "--resource", rsc, "--meta", "--set-parameter", "target-role",
                  "--parameter-value", original.stdout.strip().splitlines()[-1]], timeout=30)
        else:
            _run(["crm_resource", "--resource", rsc, "--meta", "--delete-parameter", "target-role"], timeout=30)
        _forget_cib()
    _wait_for(lambda: locate(rsc), deadline, f"{rsc} to start again after its restart")
    if wait:
        _settle(f"{seconds}s")
    return {"restarted": rsc, "nodes": locate(rsc)}


def cleanup(rsc=None, node=None):
    """
    Forget failures and re-probe (``crm_resource --cleanup``).

    CLI Example:

    .. code-block:: bash

        salt '*' crm.cleanup p_cinder-api
    """
    args = ["crm_resource", "--cleanup"]
    if rsc:
        args += ["--resource", rsc]
    if node:
        args += ["--node", node]
    return _resource_call(args, "cleanup")


def move(rsc, node, lifetime=None):
    """
    Move ``rsc`` to ``node`` (adds a location constraint; ``crm.clear`` removes it).

    CLI Example:

    .. code-block:: bash

        salt '*' crm.move p_cinder-api node2
    """
    args = ["crm_resource", "--move", "--resource", rsc, "--node", node]
    if lifetime:
        args += ["--lifetime", lifetime]
    return _resource_call(args, f"move of {rsc}")


def clear(rsc):
    """
    Remove the constraints ``crm.move`` left behind.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.clear p_cinder-api
    """
    return _resource_call(["crm_resource", "--clear", "--resource", rsc], f"clear of {rsc}")


def standby(node=None):
    """
    Put ``node`` (this node by default) in standby: its resources move away.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.standby node1
    """
    return _resource_call(["crm_standby", "--node", node or node_name(), "--update", "on"], "standby")


def online(node=None):
    """
    Bring ``node`` (this node by default) out of standby.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.online node1
    """
    return _resource_call(["crm_standby", "--node", node or node_name(), "--update", "off"], "online")


# ---------------------------------------------------------------- clones: one instance at a time

ROLLING_LOCK = "cinder_ha-rolling-{rsc}"
# After the VIP left this node: clients' ARP caches follow the holder's gratuitous ARP, and the
# requests that reached this node meanwhile (the VIP parked on its loopback, IPaddr2
# lvs_support) are answered by the instance here before it stops.
VIP_GRACE_SECONDS = 2


def _instances(clone):
    """Nodes where an instance of ``clone`` runs (crm_mon), [] when none or unknown."""
    entry = status()["resources"].get(clone) or {}
    return [node for instance in entry.get("instances", []) if instance["active"] and not instance["failed"]
            for node in instance["nodes"]]


def _ban_xml(rsc, node, score, until):
    """A location constraint: ``rsc`` scored ``score`` on ``node`` until ``until`` (then void)."""
    lock = ROLLING_LOCK.format(rsc=rsc)
    return (f'<rsc_location id="{lock}" rsc="{rsc}"><rule id="{lock}-rule" score="{score}" boolean-op="and">'
            f'<expression id="{lock}-node" attribute="#uname" operation="eq" value="{node}"/>'
            f'<date_expression id="{lock}-until" operation="lt" end="{until}"/></rule></rsc_location>')


def _lock_holder(rsc):
    """(node, expired) of the rolling-restart constraint of ``rsc``, or None when there is none."""
    import datetime
    import xml.etree.ElementTree as ET

    lock = ROLLING_LOCK.format(rsc=rsc)
    proc = _run(["cibadmin", "--query", "--xpath", f"//rsc_location[@id='{lock}']"], timeout=30)
    if proc.returncode != 0:
        return None
    element = ET.fromstring(proc.stdout)
    node = element.find("rule/expression")
    until = element.find("rule/date_expression")
    try:
        end = datetime.datetime.strptime(until.get("end"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        expired = end <= datetime.datetime.now(datetime.UTC)
    except (AttributeError, TypeError, ValueError):
        expired = True
    return (node.get("value") if node is not None else None), expired


def _drop_ban(rsc):
    _run(["cibadmin", "--delete", "--xml-text", f'<rsc_location id="{ROLLING_LOCK.format(rsc=rsc)}"/>'], timeout=30)
    _forget_cib()


def _set_ban(rsc, score):
    proc = _run(["cibadmin", "--modify", "--xml-text",
                 f'<rule id="{ROLLING_LOCK.format(rsc=rsc)}-rule" score="{score}"/>'], timeout=30)
    if proc.returncode != 0:
        _fail(f"could not set the rolling-restart rule of {rsc} to {score} (rc {proc.returncode}): {_output(proc)}")


def _wait_for(predicate, deadline, what, clone=None):
    while not predicate():
        if clone and clone not in status()["resources"]:
            _fail(f"clone {clone} was removed while waiting for {what} (cluster:mode switched meanwhile?): "
                  "the next apply decides again")
        if time.monotonic() >= deadline:
            _fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def _colocated_with(parsed, clone):
    """Resources placed with ``clone`` (the VIP): they leave a node before its instance stops."""
    return sorted(obj["resources"][0] for (tag, _oid), obj in parsed["objects"].items()
                  if tag == "colocation" and obj["resources"][1] == clone)


def _runs_elsewhere(rsc, node):
    entry = status()["resources"].get(rsc) or {}
    return bool(entry.get("active")) and node not in entry.get("nodes", [])


def rolling_restart(rsc, node=None, timeout="300s", move_first=None):
    """
    Restart THIS node's (``node``'s) instance of ``rsc`` when ``rsc`` is the primitive of a
    clone, one instance of the cluster at a time, never with the VIP on it:

    1. take the cluster-wide lock: the location constraint ``cinder_ha-rolling-<clone>``
       (score 0: no effect yet), created with ``cibadmin --create``, which fails while another
       node holds it: that node restarts its instance first, this one waits;
    2. whatever is colocated with the clone (the VIP) and runs here is moved away first (its own
       ``cinder_ha-rolling-<id>`` ban), then a grace of a few seconds;
    3. the lock becomes a ban (-INFINITY, this node): the instance stops; then score 0 again:
       it starts with the configuration on disk;
    4. once it runs and the cluster has settled, the constraints go. The moved VIP stays where
       it is (stickiness). Every constraint expires by itself (a date rule) after ``timeout``
       (plus a minute), so a minion killed half way blocks nothing for ever.

    No other instance running for 30 s (one node, or the others down): restarted in place,
    which cannot be hidden, and said. Not a clone: ``crm.restart``, which calls this function
    for the primitive of a clone. ``move_first``: more resources moved away in step 2 if they
    run here, together with the instance's stop (balanced mode's VIP while this node's HAProxy
    cannot serve it yet: the instance listens on it, so it cannot go first).

    CLI Example:

    .. code-block:: bash

        salt n2 crm.rolling_restart p_cinder-api
    """
    import datetime

    parsed = cib.parse_cib(_read_cib())
    clone = cib.clone_of(parsed, rsc)
    if clone is None:
        return dict(restart(rsc, timeout=timeout), rolling=False)
    node = node or node_name()
    seconds = max(60, (cib.duration_ms(timeout) or 300000) // 1000)
    started = time.monotonic()
    deadline = started + seconds
    until = (datetime.datetime.now(datetime.UTC)
             + datetime.timedelta(seconds=seconds + 60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    waited_for = None
    while True:
        others = [n for n in _instances(clone) if n != node]
        if others:  # somewhere for the VIP to go
            proc = _run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                         _ban_xml(clone, node, "0", until)], timeout=30)
            if proc.returncode == 0:
                break
            holder = _lock_holder(clone)
            if holder and holder[1]:
                log.warning("crm: removing the expired rolling-restart lock of %s (held by %s)", clone, holder[0])
                _drop_ban(clone)
                continue
            if holder is None and proc.returncode != 108:
                _fail(f"cibadmin could not create the rolling-restart lock of {clone} (rc {proc.returncode}): "
                      f"{_output(proc)}")
            waited_for = holder[0] if holder else waited_for
        elif time.monotonic() - started >= 30:
            result = _resource_call(["crm_resource", "--restart", "--resource", clone, "--node", node,
                                     f"--timeout={seconds}s"], f"restart of {clone} on {node}", timeout=seconds + 30)
            _settle(f"{seconds}s")
            return {"restarted": rsc, "clone": clone, "node": node, "rolling": False,
                    "comment": f"no other instance of {clone} runs: restarted in place ({result[:200]})"}
        if time.monotonic() >= deadline:
            _fail(f"another node ({waited_for or 'unknown'}) kept the rolling-restart lock of {clone} "
                  f"for {seconds}s")
        time.sleep(1)
    _forget_cib()
    moved = []
    try:
        explicit = set(move_first or ())
        for dependent in sorted(set(_colocated_with(parsed, clone)) | explicit):
            if node not in (status()["resources"].get(dependent) or {}).get("nodes", []):
                continue
            _drop_ban(dependent)  # a stale one of an earlier, killed run
            proc = _run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                         _ban_xml(dependent, node, "-INFINITY", until)], timeout=30)
            if proc.returncode != 0:
                _fail(f"could not move {dependent} off {node} (rc {proc.returncode}): {_output(proc)}")
            moved.append(dependent)
            if dependent in explicit:
                # stopped with the instance, no grace: the instance listens on it, and its
                # monitor would fail once it is gone from this node
                continue
            _wait_for(lambda d=dependent: _runs_elsewhere(d, node), deadline, f"{dependent} to leave {node}", clone)
        if set(moved) - explicit:
            time.sleep(VIP_GRACE_SECONDS)
        _set_ban(clone, "-INFINITY")
        _wait_for(lambda: node not in _instances(clone), deadline, f"the instance of {clone} on {node} to stop",
                  clone)
        for dependent in sorted(explicit & set(moved)):
            _wait_for(lambda d=dependent: _runs_elsewhere(d, node), deadline, f"{dependent} to leave {node}", clone)
        _set_ban(clone, "0")
        _wait_for(lambda: node in _instances(clone), deadline, f"the instance of {clone} on {node} to start again",
                  clone)
        _settle(f"{max(5, int(deadline - time.monotonic()))}s")
    finally:
        for dependent in moved:
            _drop_ban(dependent)
        _drop_ban(clone)
    return {"restarted": rsc, "clone": clone, "node": node, "rolling": True, "waited_for": waited_for,
            "moved_first": moved, "nodes": _instances(clone)}


def subprocess_count(by_tool=False):
    """Internal (bench, tests): cluster tool processes started by this module in this loader
    (in a state run: in this run), in all or, with ``by_tool``, as ``{"cibadmin --query": n, ...}``."""
    if by_tool:
        return dict(__context__.get("crm.tools", {}))
    return __context__.get("crm.subprocesses", 0)


# ---------------------------------------------------------------- removing what was configured

def purge(object_ids, test=False, cache_token=None, retries=6, timeout="120s"):
    """
    Remove objects of every kind (primitives, clones, groups, constraints, locations, alerts),
    with the constraints that name them, in ONE CIB transaction. The resources among them are
    stopped first (target-role, waited for up to ``timeout``), with the parameters and order
    they run with. Ids not in the CIB are ignored. Secret files
    are left alone: the stop of a removed resource still reads them (``crm_secrets.absent``
    after this). With ``test=True`` nothing is written; ``actions`` says what the cluster
    would do.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.purge '[l_p_x_secrets, c_p_x_with_ip, p_x, p_ip_x, my_alert]' test=True
    """
    if isinstance(object_ids, str):
        object_ids = [object_ids]

    def build(parsed):
        present = [oid for oid in object_ids
                   if any(o == oid and tag != "node_attr" for tag, o in parsed["objects"])]
        if not present:
            return [], None, []
        steps = cib.deletion_steps(parsed, present)
        gone = {step["id"] for step in steps}
        root = cib.remove_objects(parsed["root"], present)
        alerts = root.find("configuration/alerts")
        for alert in list(alerts if alerts is not None else []):
            if alert.tag == "alert" and alert.get("id") in gone:
                alerts.remove(alert)
        return steps, root, []

    settled = {}

    def settle(_parsed):
        settled["ok"] = _settle(timeout)

    if not test:
        _stop_before_removal(object_ids, timeout)
    result = _transaction(build, test, cache_token, retries, after_commit=settle)
    if settled and not settled["ok"]:
        result["warnings"] = list(result.get("warnings") or []) + [
            f"the cluster had not settled {timeout} after the removal (crm_resource --wait)"]
    return result


def _stop_before_removal(object_ids, timeout):
    """The resources among ``object_ids`` stopped (target-role) while the CIB still holds their
    parameters and constraints. One deleted while running is stopped as an orphan, with only
    the parameters the controller remembers: seen, an IPaddr2 re-probed after a cluster refresh
    "stopped" without its ip and left the address on lo."""
    parsed = cib.parse_cib(_read_cib(refresh=True))
    wanted = set(object_ids)
    for (tag, object_id) in sorted(parsed["objects"]):
        if object_id not in wanted or tag not in ("primitive", "group", "clone"):
            continue
        if tag != "clone" and cib.clone_of(parsed, object_id) in wanted:
            continue  # its clone is stopped instead
        _run(["crm_resource", "--resource", object_id, "--meta", "--set-parameter", "target-role",
              "--parameter-value", "Stopped"], timeout=30)
    _settle(timeout)


def unpublish_secrets_digest(rsc, node=None, test=False, timeout=120, wait=False):
    """
    Remove ``node``'s (this node's) permanent attribute ``cinder_ha_secrets_<rsc>`` (the digest
    ``crm.publish_secrets_digest`` wrote), once ``rsc`` is no longer configured and no longer
    active on that node: waits up to ``timeout`` seconds for that, then refuses. ``wait``: wait
    for it even when there is no attribute (the caller then removes the secret files, which a
    stop still reads). Returns ``{"node", "attribute", "present"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' crm.unpublish_secrets_digest p_cinder-api test=True
    """
    node = node or node_name()
    attribute = cib.secrets_attribute(rsc)
    old = _node_attribute_query(node, attribute)
    result = {"node": node, "attribute": attribute, "present": old is not None}
    if test or not (old is not None or wait):
        return result
    deadline = time.monotonic() + float(timeout)
    while True:
        configured = cib.find_object(cib.parse_cib(_read_cib(refresh=True)), rsc) is not None
        resource = None if configured else status()["resources"].get(rsc)
        active_here = bool(resource and resource.get("active") and node in resource.get("nodes", []))
        if not configured and not active_here:
            break
        if time.monotonic() >= deadline:
            _fail(f"{rsc} is still {'configured in the CIB' if configured else 'active on ' + node} after "
                  f"{timeout} s: its secret files and node attribute stay (remove the cluster objects first, "
                  "on the controller)")
        time.sleep(1)
    if old is not None:
        proc = _run(["crm_attribute", "--node", node, "--name", attribute, "--lifetime", "forever", "--delete"],
                    timeout=30)
        if proc.returncode != 0:
            _fail(f"crm_attribute could not delete {attribute} on {node} (rc {proc.returncode}): {_output(proc)}")
        _forget_cib()
    return result
