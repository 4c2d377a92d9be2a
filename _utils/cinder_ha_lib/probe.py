"""The one HTTP probe: does something answer on this URL?"""
import ssl
import time
import urllib.error
import urllib.request


def http_get(url, timeout=5.0, cafile=None, insecure=False):
    """
    One unauthenticated GET of ``url``: ``{"url", "answers", "status", "ms", "error"}``.

    Any HTTP status means the server answers: cinder-api answers 401 on ``/v3`` without a
    token, 300 on ``/``. ``error`` says why there was no answer at all. ``cafile`` and
    ``insecure`` are for https endpoints, as in the Keystone credentials.
    """
    context = None
    if str(url).startswith("https:"):
        context = ssl.create_default_context(cafile=cafile)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    status, error = None, None
    try:
        with urllib.request.urlopen(urllib.request.Request(str(url), method="GET"), timeout=timeout,
                                    context=context) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        error = str(getattr(exc, "reason", exc))[:300]
    return {"url": str(url), "answers": status is not None, "status": status,
            "ms": round((time.monotonic() - started) * 1000, 1), "error": error}
