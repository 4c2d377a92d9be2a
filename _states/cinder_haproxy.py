"""
HAProxy's config in balanced mode, written only once HAProxy itself took it, and the running
HAProxy reloaded when it changed.

.. code-block:: yaml

    haproxy config:
      cinder_haproxy.config_managed:
        - name: /etc/haproxy/cinder-ha.cfg
        - text: {{ config | yaml_encode }}     # cinder_ha_lib.haproxy.render_config's
        - pid_file: /run/resource-agents/p_haproxy.pid
        - agent: /usr/lib/ocf/resource.d/openstack/haproxy
        - params: {config: /etc/haproxy/cinder-ha.cfg, pid: /run/resource-agents/p_haproxy.pid}
        - instance: p_haproxy

The config holds paths and addresses, no secret: its diff is shown as it is.
"""
import difflib

__virtualname__ = "cinder_haproxy"

BINARY = "/usr/sbin/haproxy"


def __virtual__():
    if "cinder_haproxy.install_config" in __salt__:
        return __virtualname__
    return (False, "cinder_haproxy: the cinder_haproxy execution module is not loaded (is haproxy installed?)")


def _error_type():
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError


def _diff(name, current, text):
    return "".join(difflib.unified_diff((current or "").splitlines(keepends=True), text.splitlines(keepends=True),
                                        fromfile=name if current is not None else "/dev/null", tofile=name))


def config_managed(name, text, pid_file, agent, params, instance, binary=BINARY):
    """
    Make ``name`` hold ``text`` (HAProxy's config), checked by HAProxy first (``haproxy -c``): a
    config it refuses fails the state with its words, and neither the file nor the running
    HAProxy is touched. When the file changed and this node's HAProxy runs (the master of
    ``pid_file``), the agent's own ``reload`` action is run (``agent``, its ``params`` and the
    resource's name ``instance``): a seamless reload, the drained servers kept drained. When it
    does not run, the file is all: the cluster starts HAProxy from it. ``test=True`` shows the
    diff and whether HAProxy takes the config, and writes nothing.

    name
        The config's path (0640 root:haproxy; a link or anything but a regular file is refused).
    text
        The whole config (``cinder_ha_lib.haproxy.render_config``).
    pid_file, agent, params, instance
        The agent's pid file, the agent's path, its parameters (``{config, pid, ...}``) and the
        cluster's name of the resource.
    binary
        The haproxy program (``haproxy -c``, and the command line of the running master).

    .. code-block:: yaml

        haproxy config:
          cinder_haproxy.config_managed:
            - name: /etc/haproxy/cinder-ha.cfg
            - text: {{ config | yaml_encode }}
            - pid_file: /run/resource-agents/p_haproxy.pid
            - agent: /usr/lib/ocf/resource.d/openstack/haproxy
            - params: {config: /etc/haproxy/cinder-ha.cfg, pid: /run/resource-agents/p_haproxy.pid}
            - instance: p_haproxy
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    error = _error_type()
    try:
        current = __salt__["cinder_haproxy.config_file"](name)
    except error as exc:
        ret["comment"] = str(exc)
        return ret
    if current == text:
        ret.update(result=True, comment=f"{name} is as rendered")
        return ret
    diff = _diff(name, current, text)
    if __opts__["test"]:
        # haproxy -c reads a private copy: nothing is written, so asked in test mode too
        ok, message = __salt__["cinder_haproxy.check_config"](text, binary=binary)
        if not ok:
            ret["comment"] = f"HAProxy refuses the new config for {name}: {message}"
            return ret
        then = ("HAProxy reloaded" if __salt__["cinder_haproxy.running"](pid_file, binary=binary)
                else "HAProxy not running on this node: the cluster starts it from this file")
        ret.update(result=None, changes={"diff": diff}, comment=f"{name} would be written, then {then}")
        return ret
    try:
        __salt__["cinder_haproxy.install_config"](name, text, binary=binary)
    except error as exc:
        ret["comment"] = str(exc)  # HAProxy's words; nothing was written
        return ret
    ret["changes"] = {"diff": diff}
    if not __salt__["cinder_haproxy.running"](pid_file, binary=binary):
        ret.update(result=True, comment=f"{name} written; HAProxy not running on this node, the cluster starts "
                                        "it from this file")
        return ret
    try:
        __salt__["cinder_haproxy.reload"](agent, params, instance)
    except error as exc:
        ret["comment"] = f"{name} written, but the reload of {instance} failed: {exc}"
        return ret
    ret.update(result=True, comment=f"{name} written and HAProxy reloaded")
    return ret
