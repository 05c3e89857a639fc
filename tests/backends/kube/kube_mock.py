"""A mock Kubernetes API server speaking the real HTTP API: kmock's stateful emulator plus the
few things the kube backend needs that kmock lacks (label/field selectors, list kinds,
cluster-scoped namespaces with cascading delete, the pods/eviction subresource).

It runs on loopback in a background thread; tests play the controllers' part through
`put`/`patch` (pod status, conditions, events, Deployment status)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import k8s as kmock_k8s

K8sObject = dict[str, Any]
_NS_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
_CADVISOR_PATH = re.compile(r"^/api/v1/nodes/([^/]+)/proxy/metrics/cadvisor$")

RESOURCES = {
    "Pod": kmock.resource("", "v1", "pods"),
    "Node": kmock.resource("", "v1", "nodes"),
    "Event": kmock.resource("", "v1", "events"),
    "Service": kmock.resource("", "v1", "services"),
    "Deployment": kmock.resource("apps", "v1", "deployments"),
    "HorizontalPodAutoscaler": kmock.resource("autoscaling", "v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": kmock.resource("policy", "v1", "poddisruptionbudgets"),
    "PodMetrics": kmock.resource("metrics.k8s.io", "v1beta1", "pods"),
    "Job": kmock.resource("batch", "v1", "jobs"),
    "APIService": kmock.resource("apiregistration.k8s.io", "v1", "apiservices"),
}
Handler = Callable[[aiohttp.web.BaseRequest, "re.Match[str]"], Awaitable[aiohttp.web.StreamResponse]]


def now_rfc3339(offset_s: float = 0.0) -> str:
    t = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return t.isoformat().replace("+00:00", "Z")


def _labels_match(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: K8sObject, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _fields_match(obj: K8sObject, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        neg = "!=" in term
        k, v = term.split("!=" if neg else "=", 1)
        equal = str(_field(obj, k.strip().lstrip("=")) or "") == v.strip().lstrip("=")
        if equal == neg:
            return False
    return True


class KubeApiMock(kmock.KubernetesEmulator):
    """kmock emulator with selectors, list kinds, namespaces and evictions."""

    eviction_policy: Callable[[str, str], tuple[int, str]] | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces: dict[str, K8sObject] = {}
        self.deleted_namespaces: list[str] = []
        self.evictions: list[tuple[str, str, int]] = []
        self.cadvisor: dict[str, str] = {}  # node -> its cAdvisor text (nodes/proxy); absent: 404
        self._uids = 0
        self.routes: list[tuple[re.Pattern[str], Handler]] = []
        for res in RESOURCES.values():
            if res.group != "metrics.k8s.io":
                self.resources[res] = kmock.ResourceInfo()

    def route(self, pattern: str, handler: Handler) -> None:
        """Serve paths matching `pattern` (a regex on the path) with `handler` before anything
        else: what a test needs beyond the emulator (a subresource, a controller's answer)."""
        self.routes.append((re.compile(pattern), handler))

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        for pattern, handler in self.routes:
            hit = pattern.match(raw_request.path)
            if hit:
                return await handler(raw_request, hit)
        c = _CADVISOR_PATH.match(raw_request.path)
        if c:
            if c.group(1) not in self.cadvisor:
                return _status(404, "NotFound", f'nodes "{c.group(1)}" not found')
            return aiohttp.web.Response(text=self.cadvisor[c.group(1)], content_type="text/plain")
        m = _NS_PATH.match(raw_request.path)
        if m:
            await raw_request.read()
            return self._namespaces(
                raw_request.method,
                m.group(1),
                await raw_request.json() if raw_request.method == "POST" else None,
            )
        return await super().__call__(raw_request)

    def _namespaces(
        self, method: str, name: str | None, body: K8sObject | None
    ) -> aiohttp.web.Response:
        if method == "POST" and body is not None:
            ns = body["metadata"]["name"]
            if ns in self.namespaces:
                return _status(409, "AlreadyExists", f'namespaces "{ns}" already exists')
            body.setdefault("metadata", {})["creationTimestamp"] = now_rfc3339()
            body["status"] = {"phase": "Active"}
            self.namespaces[ns] = body
            return aiohttp.web.json_response(body, status=201)
        if method == "GET" and name is None:
            return aiohttp.web.json_response(
                {
                    "kind": "NamespaceList",
                    "apiVersion": "v1",
                    "items": list(self.namespaces.values()),
                }
            )
        if name not in self.namespaces:
            return _status(404, "NotFound", f'namespaces "{name}" not found')
        if method == "GET":
            return aiohttp.web.json_response(self.namespaces[name])
        if method == "DELETE":
            obj = self.namespaces.pop(name)
            self.deleted_namespaces.append(name)
            for key, o in list(self.objects.items()):  # the namespace controller's cascade
                if key[1] == name and not o.deleted:
                    o.delete()
            return aiohttp.web.json_response(obj)
        return _status(405, "MethodNotAllowed", method)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.subresource == "eviction" and request.resource is not None:
            return await self._evict(request)
        if (
            request.action == kmock.action.CREATE
            and request.resource is not None
            and request.subresource is None
        ):
            self._system_fields(request.resource, request.data)
        response = await super()._handle(request)
        if (
            request.action == kmock.action.UPDATE
            and request.resource == RESOURCES["Deployment"]
            and request.subresource in (None, "scale")
            and "spec" in (request.data or {})
        ):
            await self._bump_generation(request.namespace, request.name or "")
        return response

    def _system_fields(self, resource: Any, body: K8sObject) -> None:
        """What the API server sets on create whatever the client sent: metadata.uid and
        creationTimestamp, metadata.generation 1 for a Deployment (its strategy's
        PrepareForCreate), and no status (a Deployment's starts empty)."""
        meta = body.setdefault("metadata", {})
        self._uids += 1
        meta["uid"] = f"uid-{meta.get('name')}-{self._uids}"
        meta["creationTimestamp"] = now_rfc3339()
        if resource == RESOURCES["Deployment"]:
            meta["generation"] = 1
            body.pop("status", None)

    async def _bump_generation(self, namespace: str | None, name: str) -> None:
        """A spec change makes a new metadata.generation, as the API server does."""
        async with self._lock:
            key = (RESOURCES["Deployment"], namespace, name)
            if key in self.objects and not self.objects[key].deleted:  # ObjectsArray has no .get()
                obj = self.objects[key]
                generation = int((obj.get("metadata") or {}).get("generation") or 1)
                obj.patch({"metadata": {"generation": generation + 1}})

    async def _evict(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        ns, name = request.namespace or "", request.name or ""
        key = (RESOURCES["Pod"], ns, name)
        if key not in self.objects or self.objects[key].deleted:
            self.evictions.append((ns, name, 404))
            return _status(404, "NotFound", f'pods "{name}" not found')
        code, message = self.eviction_policy(ns, name) if self.eviction_policy else (201, "")
        self.evictions.append((ns, name, code))
        if code >= 400:
            return _status(
                code,
                "TooManyRequests" if code == 429 else "InternalError",
                message,
                causes=[{"reason": "DisruptionBudget", "message": message}]
                if code == 429
                else None,
            )
        async with self._lock:
            self.objects[key].delete()
        return aiohttp.web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}, status=201
        )

    async def _serve_list(self, request: kmock.Request) -> Any:
        out: K8sObject
        try:
            listed = await super()._serve_list(request)
            # kmock's emulator returns a plain dict here (annotated as the wide `Payload` union)
            assert isinstance(listed, dict)
            out = listed
        except kmock_k8s.KubernetesResourceNotFoundError:
            if (
                request.resource is not None
                and request.resource.group == "metrics.k8s.io"
                and not self.metrics
            ):
                raise
            out = {"metadata": {}, "items": []}
        items = out["items"]
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        if labels:
            items = [
                o
                for o in items
                if _labels_match((o.get("metadata") or {}).get("labels") or {}, labels)
            ]
        if fields:
            items = [o for o in items if _fields_match(o, fields)]
        kind = next((k for k, r in RESOURCES.items() if r == request.resource), "Unknown")
        return {
            "kind": f"{kind}List",
            "apiVersion": "v1",
            "metadata": out.get("metadata", {}),
            "items": items,
        }

    metrics = False

    # test-side helpers (thread-safe: they run on the server's loop) -------------------------------
    # put/get deliberately shadow kmock's HTTP-client shortcuts (put(url, **kw), get(url, **kw)):
    # these tests reach the store through them and send HTTP through the backend under test
    def put(self, kind: str, obj: K8sObject) -> None:  # type: ignore[override]
        meta = obj["metadata"]
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.setdefault("uid", f"uid-{meta['name']}-{len(self.objects)}")
        key = (RESOURCES[kind], meta.get("namespace"), meta["name"])
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].patch(obj)
        elif key in self.objects:
            self.objects[key].create(obj)
        else:
            self.objects[key] = obj

    def get(self, kind: str, namespace: str | None, name: str) -> K8sObject | None:  # type: ignore[override]
        key = (RESOURCES[kind], namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def items(self, kind: str, namespace: str | None = None) -> list[K8sObject]:
        return [
            copy.deepcopy(o.raw)
            for (r, ns, _), o in list(self.objects.items())
            if r == RESOURCES[kind] and not o.deleted and (namespace is None or ns == namespace)
        ]

    def remove(self, kind: str, namespace: str | None, name: str) -> None:
        key = (RESOURCES[kind], namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].delete()


def _status(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> aiohttp.web.Response:
    body: K8sObject = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if causes:
        body["details"] = {"causes": causes}
    return aiohttp.web.json_response(body, status=code)


class MockServer:
    """KubeApiMock served on 127.0.0.1 from a background thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.api: KubeApiMock
        self.url = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kube-api-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"mock API server did not start: {self._error!r}")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by the constructor
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with KubeApiMock() as api, kmock.Server(api) as server:
            self.api = api
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn on the server loop (object store mutations must not race request handling)."""

        async def run() -> Any:
            async with self.api._lock:
                return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
