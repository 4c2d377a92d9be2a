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
