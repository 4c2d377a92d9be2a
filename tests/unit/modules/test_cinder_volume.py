"""cinder_volume.wait_services_up with Salt's loader mocked: it polls cinder's services table
until what a create needs is up, and stops at its bound."""
from unittest.mock import MagicMock

import pytest

from _modules import cinder_volume
from tests.unit.modules.test_cinder_ha import PILLAR as BASE_PILLAR

PILLAR = dict(BASE_PILLAR, volume={"backends": {"ceph": {"driver": "cinder.volume.drivers.rbd.RBDDriver"}}})
BINARY = "/srv/cinder/bin/cinder-volume"
SCHEDULER = {"binary": "cinder-scheduler", "host": "n1", "cluster": None, "up": True, "disabled": False}
VOLUME = {"binary": "cinder-volume", "host": "cinder-ha-volume@ceph", "cluster": None, "up": True, "disabled": False}


@pytest.fixture
def configure_loader_modules():
    return {cinder_volume: {"__salt__": {"pillar.get": MagicMock(return_value=PILLAR)}, "__opts__": {"test": False}}}


def test_polls_until_the_volume_service_reports(monkeypatch):
    answers = iter([[SCHEDULER], [SCHEDULER, dict(VOLUME, up=False)], [SCHEDULER, VOLUME]])
    monkeypatch.setattr(cinder_volume, "services", MagicMock(side_effect=lambda **_: next(answers)))
    found = cinder_volume.wait_services_up(config="/etc/cinder/cinder.conf", binary=BINARY, timeout=30, interval=0)
    assert found["ready"] is True and found["missing"] == [] and cinder_volume.services.call_count == 3
    assert cinder_volume.services.call_args.kwargs == {"config": "/etc/cinder/cinder.conf", "binary": BINARY}


def test_stops_at_its_bound_naming_what_is_missing(monkeypatch):
    monkeypatch.setattr(cinder_volume, "services", MagicMock(return_value=[VOLUME]))
    found = cinder_volume.wait_services_up(binary=BINARY, timeout=0.2, interval=0.05)
    assert found["ready"] is False and found["missing"] == ["no cinder-scheduler is up"]
    assert 0.2 <= found["waited"] < 5


def _crm_status(volume_role):
    def entry(role):
        return {"role": role, "active": role in ("Started", "Starting"), "failed": False, "nodes": ["n1"]}
    return {"resources": {"p_cinder-scheduler": entry("Started"), "p_cinder-volume": entry(volume_role)}}


def test_a_row_left_by_a_stopped_service_waits_for_the_cluster_to_start_it(monkeypatch):
    # right after cinder_ha.clean, cinder-volume's row is still younger than service_down_time
    monkeypatch.setattr(cinder_volume, "services", MagicMock(return_value=[SCHEDULER, VOLUME]))
    statuses = iter([_crm_status("Stopped"), _crm_status("Starting"), _crm_status("Started")])
    crm_wait = MagicMock(return_value=True)
    monkeypatch.setitem(cinder_volume.__salt__, "crm.wait", crm_wait)
    monkeypatch.setitem(cinder_volume.__salt__, "crm.status", MagicMock(side_effect=lambda: next(statuses)))
    found = cinder_volume.wait_services_up(binary=BINARY, timeout=30, interval=0)
    assert found["ready"] is True and crm_wait.call_count == 3
    assert crm_wait.call_args.kwargs["timeout"] in ("29s", "30s")  # bounded by what is left


def test_the_bound_names_the_resource_the_cluster_has_not_started(monkeypatch):
    monkeypatch.setattr(cinder_volume, "services", MagicMock(return_value=[SCHEDULER, VOLUME]))
    monkeypatch.setitem(cinder_volume.__salt__, "crm.wait", MagicMock(return_value=False))
    monkeypatch.setitem(cinder_volume.__salt__, "crm.status", MagicMock(return_value=_crm_status("Stopped")))
    found = cinder_volume.wait_services_up(binary=BINARY, timeout=0.2, interval=0.05)
    assert found["ready"] is False
    assert found["missing"] == ["the cluster has not started p_cinder-volume yet (Stopped)"]
