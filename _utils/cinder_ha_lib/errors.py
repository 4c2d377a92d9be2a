"""Typed exceptions of the pure logic. Each carries its problems as a list, never a joined string."""


class CinderHaError(ValueError):
    """Base: ``problems`` is the list of everything found wrong; ``str()`` lists them."""

    def __init__(self, problems, heading=None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.heading = heading
        text = "\n  - ".join(self.problems)
        super().__init__(f"{heading}:\n  - {text}" if heading else text)


class InvalidPillar(CinderHaError):
    """The ``cinder_ha`` pillar fails validation (every error of the whole pillar)."""

    def __init__(self, problems):
        super().__init__(problems, heading="invalid cinder_ha pillar")


class ModelError(CinderHaError):
    """The declared cluster objects are not valid."""


class ConfError(CinderHaError):
    """The cinder.conf options asked for contradict each other."""


class StartRecordError(CinderHaError):
    """The agent's record of what a running cinder-api started with is unreadable."""


class HaproxyError(CinderHaError):
    """An HAProxy config asked for with a value that cannot be written safely, or an answer of
    HAProxy's runtime API that is not what was asked for."""
