"""`churnstream kibana install`: index templates, data views and the dashboards, in that order.

1. waits for Elasticsearch (cluster health API, ``wait_for_status=yellow``);
2. installs the composable index templates (before any job writes);
3. unless ``--skip-kibana``: waits for Kibana (``GET /api/status``: overall ``available``, or at
   least its Elasticsearch and saved-objects core services), imports the data views, the Lens
   visualizations and the dashboards in one ``POST /api/saved_objects/_import?overwrite=true``
   (multipart, field ``file``; the data views carry ``allowNoIndex`` so they work before any index
   exists), and makes the enriched data view the default one unless one is set
   (``POST /api/data_views/default`` with ``force: false``).

The ids Kibana gave the objects come from the import response: an entry of ``successResults`` has a
``destinationId`` when Kibana stored the object under another id than the one in the file (a copy
made for a conflict, e.g. the id taken in another space). The printed dashboard links and the
default data view use that id (``imported_id``), else the one sent.

Kibana 9 HTTP API as used here: every call sends ``kbn-xsrf`` (required on POST) and the
credentials. ``/api/status`` answers 200 unless Kibana's core is unavailable (503); without
credentials (or when anonymous status is off) it answers only ``status.overall.level``; with them
the full body, ``status.overall`` / ``status.core.{elasticsearch,savedObjects}`` each with a
``level`` (``available``, ``degraded``, ``unavailable``, ``critical``) — the v8 format, the default
since 8.0 (``v7format=true`` would ask for the old ``state`` one).

Idempotent: run it as often as you like. Security: basic auth with CHURNSTREAM_ES_USERNAME /
CHURNSTREAM_ES_PASSWORD, or an API key (CHURNSTREAM_ES_API_KEY, the base64 ``id:key`` value
Elasticsearch returns as ``encoded``), sent to both Elasticsearch and Kibana.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
import uuid

from elasticsearch import Elasticsearch

from foundation import UserError
from foundation.settings import Settings
from kibana import saved_objects
from kibana.panels import DASHBOARDS
from kibana.templates import install_templates

log = logging.getLogger("churnstream.kibana")

POLL_SECONDS = 2.0


def api_key(settings: Settings) -> str:
    return settings.es_api_key


def auth_header(settings: Settings) -> dict[str, str]:
    key = api_key(settings)
    if key:
        return {"Authorization": f"ApiKey {key}"}
    if settings.es_username:
        token = base64.b64encode(f"{settings.es_username}:{settings.es_password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def es_client(settings: Settings):
    key = api_key(settings)
    if not key:
        return settings.es_client()

    return Elasticsearch(settings.es_urls(), api_key=key, request_timeout=30)


def wait_for_elasticsearch(settings: Settings, es=None, timeout: float = 300.0) -> None:
    es = es or es_client(settings)
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            es.options(request_timeout=20).cluster.health(wait_for_status="yellow", timeout="10s")
            return
        except Exception as e:  # noqa: BLE001 - not reachable yet, or not yellow yet
            last = f"{type(e).__name__}: {str(e)[:200]}"
            if "401" in last or "403" in last:
                raise UserError(f"Elasticsearch at {settings.es_url} refused the credentials ({last}); check "
                                "CHURNSTREAM_ES_USERNAME/CHURNSTREAM_ES_PASSWORD or CHURNSTREAM_ES_API_KEY.") from None
        if time.monotonic() > deadline:
            raise UserError(f"Elasticsearch at {settings.es_url} was not ready within {timeout:.0f} s ({last}); "
                            "start it or point CHURNSTREAM_ES_URL at your cluster.")
        time.sleep(POLL_SECONDS)


class Kibana:
    """The few Kibana HTTP APIs the installer needs (standard library only)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = dict(headers, **{"kbn-xsrf": "churnstream"})
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                content_type: str = "application/json") -> tuple[int, dict]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"raw": raw[:300].decode("utf-8", "replace")}

    def ready(self) -> tuple[bool, str]:
        status, body = self.request("GET", "/api/status")
        if status in (401, 403):
            raise UserError(f"Kibana at {self.url} refused the credentials (HTTP {status}); check "
                            "CHURNSTREAM_ES_USERNAME/CHURNSTREAM_ES_PASSWORD or CHURNSTREAM_ES_API_KEY.")
        if status != 200:
            return False, f"HTTP {status}"
        overall = body.get("status", {}).get("overall", {})
        core = body.get("status", {}).get("core", {})
        if overall.get("level") == "available":
            return True, "available"
        if all(core.get(s, {}).get("level") == "available" for s in ("elasticsearch", "savedObjects")):
            return True, f"{overall.get('level')} (saved objects available)"
        return False, str(overall.get("level") or body)[:200]

    def wait(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ok, why = self.ready()
            except (urllib.error.URLError, OSError) as e:   # not listening yet
                ok, why = False, f"{type(e).__name__}: {e}"
            if ok:
                log.info("kibana: %s is ready (%s)", self.url, why)
                return
            if time.monotonic() > deadline:
                raise UserError(f"Kibana at {self.url} was not ready within {timeout:.0f} s ({why}); start it, "
                                "point --kibana-url/CHURNSTREAM_KIBANA_URL at it, or pass --skip-kibana.")
            time.sleep(POLL_SECONDS)

    def import_ndjson(self, ndjson: str) -> dict:
        boundary = f"churnstream-{uuid.uuid4().hex}"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"saved_objects.ndjson\"\r\n"
                f"Content-Type: application/ndjson\r\n\r\n").encode() + ndjson.encode("utf-8") + \
            f"\r\n--{boundary}--\r\n".encode()
        status, resp = self.request("POST", "/api/saved_objects/_import?overwrite=true", body,
                                    content_type=f"multipart/form-data; boundary={boundary}")
        if status != 200 or not resp.get("success"):
            errors = resp.get("errors") or resp
            raise UserError(f"Kibana import failed (HTTP {status}): {json.dumps(errors)[:500]}")
        return resp

    def ensure_default_data_view(self, data_view_id: str) -> bool:
        """Make ``data_view_id`` the default data view unless one is set (``force: false``)."""
        status, resp = self.request("GET", "/api/data_views/default")
        if status != 200 or resp.get("data_view_id"):
            return False
        status, _ = self.request("POST", "/api/data_views/default", {"data_view_id": data_view_id, "force": False})
        return status == 200


def imported_id(import_response: dict, obj_type: str, obj_id: str) -> str:
    """The id an object sent as ``obj_type``/``obj_id`` has in Kibana after the import that answered
    ``import_response``: its ``destinationId`` when Kibana re-id'd it, else its own."""
    for r in import_response.get("successResults") or []:
        if r.get("type") == obj_type and r.get("id") == obj_id:
            return r.get("destinationId") or obj_id
    return obj_id


def dashboard_links(kibana_url: str, import_response: dict, settings: Settings | None = None) -> list[str]:
    """Each dashboard's link, by the id Kibana stored it under."""
    base = kibana_url.rstrip("/")
    return [f"{base}/app/dashboards#/view/"
            f"{imported_id(import_response, 'dashboard', saved_objects.dashboard_id(d, settings))}"
            for d in DASHBOARDS]


def install(settings: Settings, kibana_url: str | None = None, skip_kibana: bool = False,
            timeout: float = 300.0, **index_overrides) -> dict:
    """Everything, idempotently. Returns a summary (for the CLI and tests)."""
    es = es_client(settings)
    wait_for_elasticsearch(settings, es, timeout)
    summary: dict = {}
    if settings.kibana_system_password:
        # Compose: Kibana logs in as kibana_system; its password comes from .env, never from a file in git.
        es.security.change_password(username="kibana_system", password=settings.kibana_system_password)
        summary["kibana_system_password"] = "set"
        log.info("kibana: kibana_system password set")
    summary["templates"] = install_templates(settings, es=es, **index_overrides)
    if skip_kibana:
        return summary
    kb = Kibana(kibana_url or settings.kibana_url, auth_header(settings))
    kb.wait(timeout)
    objects = saved_objects.build(settings)
    resp = kb.import_ndjson(saved_objects.to_ndjson(objects))
    summary["data_views"] = [o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"]
    summary["imported"] = resp.get("successCount", 0)
    summary["default_data_view"] = kb.ensure_default_data_view(
        imported_id(resp, "index-pattern", saved_objects.data_view_id("enriched", settings)))
    summary["dashboards"] = dashboard_links(kb.url, resp, settings)
    summary["dashboard"] = summary["dashboards"][0]     # the first one, for callers that show one link
    log.info("kibana: %d data views, %d objects imported; dashboards: %s", len(summary["data_views"]),
             summary["imported"], ", ".join(summary["dashboards"]))
    return summary
