"""A mock Kubernetes API server speaking the real HTTP API: kmock's stateful emulator plus the
few things the kube backend needs that kmock lacks (label/field selectors, list kinds,
cluster-scoped namespaces with cascading delete, the pods/eviction subresource), and the
apiserver's strictness a real run meets: metadata.resourceVersion preconditions (409 Conflict),
aggregated APIs answering 503 while their APIService is not Available, and RBAC (403 Forbidden,
SelfSubjectAccessReview) under an optional role model (`KubeApiMock.rbac`).

It runs on loopback in a background thread; tests play the controllers' part through
`put`/`patch` (pod status, conditions, events, Deployment status)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import k8s as kmock_k8s

K8sObject = dict[str, Any]
_NS_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
_CADVISOR_PATH = re.compile(r"^/api/v1/nodes/([^/]+)/proxy/metrics/cadvisor$")
_SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
#: groups served by an extension apiserver through the aggregator (an APIService each)
AGGREGATED_GROUPS = ("metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io")
CONFLICT_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)

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
Handler = Callable[
    [aiohttp.web.BaseRequest, "re.Match[str]"], Awaitable[aiohttp.web.StreamResponse]
]


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


@dataclass(frozen=True)
class RequestAttributes:
    """What the apiserver's RequestInfoFactory makes of a request, the input to authorization."""

    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def request_attributes(method: str, path: str, query: Any) -> RequestAttributes:
    """Verb, group, resource, subresource, namespace and name of a REST path, as the apiserver
    derives them (GET -> get/list/watch, POST -> create, PUT -> update, PATCH -> patch,
    DELETE -> delete/deletecollection; /namespaces/NAME is the namespace NAME itself)."""
    parts = [p for p in path.split("/") if p]
    http = method.upper()
    non_resource = RequestAttributes(verb=http.lower(), path=path)
    if len(parts) < 2 or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return non_resource  # discovery of a group version
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if http in ("GET", "HEAD"):
        watch = str((query or {}).get("watch", "")).lower() in ("1", "true")
        verb = "get" if name else "watch" if watch else "list"
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(http, http.lower())
    return RequestAttributes(verb, path, True, group, version, resource, sub, namespace, name)


def _rule_allows(rule: K8sObject, a: RequestAttributes) -> bool:
    """rbac/v1 PolicyRule matching (upstream's RuleAllows): verb, API group, resource or
    resource/subresource (or `*`, `*/sub`), resourceNames."""
    verbs = rule.get("verbs") or []
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    names = rule.get("resourceNames") or []
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    return (
        ("*" in verbs or a.verb in verbs)
        and ("*" in groups or a.group in groups)
        and any(
            r in ("*", combined) or (a.subresource and r == f"*/{a.subresource}") for r in resources
        )
        and (not names or a.name in names)
    )


@dataclass
class RoleModel:
    """Who the client is and what it may do: `cluster_rules` as a ClusterRole bound by a
    ClusterRoleBinding, `namespace_rules` as Roles bound by RoleBindings (namespace -> rules).
    Non-resource URLs (discovery) and self-reviews are allowed, as system:discovery and
    system:basic-user allow them to every authenticated user."""

    user: str = "gauntlet"
    cluster_rules: list[K8sObject] = field(default_factory=list)
    namespace_rules: dict[str, list[K8sObject]] = field(default_factory=dict)

    @classmethod
    def from_cluster_role(cls, role: K8sObject, user: str = "gauntlet") -> RoleModel:
        return cls(user=user, cluster_rules=list(role.get("rules") or []))

    def allows(self, a: RequestAttributes) -> bool:
        if not a.resource_request or (
            a.group == "authorization.k8s.io"
            and a.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
        ):
            return True
        rules = list(self.cluster_rules)
        if a.namespace:
            rules += self.namespace_rules.get(a.namespace, [])
        return any(_rule_allows(r, a) for r in rules)


def forbidden_message(user: str, a: RequestAttributes) -> str:
    """The apiserver's Forbidden message (responsewriters.forbiddenMessage, NewForbidden)."""
    if not a.resource_request:
        return f'forbidden: User "{user}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    why = f'User "{user}" cannot {a.verb} resource "{resource}" in API group "{a.group}"'
    why += f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    return (
        f'{qualified} "{a.name}" is forbidden: {why}'
        if a.name
        else (f"{qualified} is forbidden: {why}")
    )


class KubeApiMock(kmock.KubernetesEmulator):
    """kmock emulator with selectors, list kinds, namespaces and evictions, resourceVersion
    preconditions, APIService availability and an optional RBAC role model."""

    eviction_policy: Callable[[str, str], tuple[int, str]] | None = None
    #: None: every request is allowed; else requests the model does not allow answer 403
    rbac: RoleModel | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces: dict[str, K8sObject] = {}
        self.deleted_namespaces: list[str] = []
        self.evictions: list[tuple[str, str, int]] = []
        self.cadvisor: dict[str, str] = {}  # node -> its cAdvisor text (nodes/proxy); absent: 404
        self._uids = 0
        self._rvs = itertools.count(1)
        #: (kind, name) -> how many times a GET of it is followed by another client's write
        #: (a kubelet's status heartbeat) before the caller's next request
        self.concurrent_writes: dict[tuple[str, str], int] = {}
        self.forbidden: list[RequestAttributes] = []  # requests refused by `rbac`
        self.reviews: list[K8sObject] = []  # SelfSubjectAccessReview specs asked
        self.conflicts: list[tuple[str, str]] = []  # (path, stale resourceVersion) refused
        self.aggregated_unavailable: list[str] = []  # paths answered 503
        self.routes: list[tuple[re.Pattern[str], Handler]] = []
        for res in RESOURCES.values():
            if res.group != "metrics.k8s.io":
                self.resources[res] = kmock.ResourceInfo()

    def route(self, pattern: str, handler: Handler) -> None:
        """Serve paths matching `pattern` (a regex on the path) with `handler` before anything
        else: what a test needs beyond the emulator (a subresource, a controller's answer)."""
        self.routes.append((re.compile(pattern), handler))

    def next_resource_version(self) -> str:
        return str(next(self._rvs))

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        attrs = request_attributes(raw_request.method, raw_request.path, raw_request.query)
        if self.rbac is not None and not self.rbac.allows(attrs):
            self.forbidden.append(attrs)
            return _status(
                403,
                "Forbidden",
                forbidden_message(self.rbac.user, attrs),
                details={"name": attrs.name, "group": attrs.group, "kind": attrs.resource},
            )
        unavailable = self._aggregated_gate(raw_request.path)
        if unavailable is not None:
            return unavailable
        for pattern, handler in self.routes:
            hit = pattern.match(raw_request.path)
            if hit:
                return await handler(raw_request, hit)
        if raw_request.path == _SSAR_PATH and raw_request.method == "POST":
            return self._self_review(await raw_request.json())
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
            body["metadata"]["resourceVersion"] = self.next_resource_version()
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

    # self-reviews and aggregated APIs --------------------------------------------------------
    def _self_review(self, body: K8sObject) -> aiohttp.web.Response:
        """SelfSubjectAccessReview: status.allowed from the same role model as every request."""
        spec = body.get("spec") or {}
        self.reviews.append(copy.deepcopy(spec))
        ra = spec.get("resourceAttributes")
        if ra is not None:
            attrs = RequestAttributes(
                verb=str(ra.get("verb") or ""),
                path="",
                resource_request=True,
                group=str(ra.get("group") or ""),
                version=str(ra.get("version") or ""),
                resource=str(ra.get("resource") or ""),
                subresource=str(ra.get("subresource") or ""),
                namespace=str(ra.get("namespace") or ""),
                name=str(ra.get("name") or ""),
            )
        else:
            nra = spec.get("nonResourceAttributes") or {}
            attrs = RequestAttributes(verb=str(nra.get("verb") or ""), path=str(nra.get("path")))
        allowed = self.rbac is None or self.rbac.allows(attrs)
        status: K8sObject = {"allowed": allowed}
        if self.rbac is not None and allowed:
            status["reason"] = f'RBAC: allowed for User "{self.rbac.user}"'
        out = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        return aiohttp.web.json_response(out, status=201)

    def apiservice_available(self, name: str) -> bool | None:
        """Whether APIService `name` (e.g. v1beta1.metrics.k8s.io) is Available; None if none
        is registered."""
        key = (RESOURCES["APIService"], None, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        conds = (self.objects[key].raw.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Available" and c.get("status") == "True" for c in conds)

    def _aggregated_gate(self, path: str) -> aiohttp.web.Response | None:
        """What kube-aggregator answers for a group served through an APIService: 503 while it
        is not Available, 404 when nothing registers the group (with the legacy `metrics`
        switch standing in for an Available metrics-server)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 3 or parts[0] != "apis" or parts[1] not in AGGREGATED_GROUPS:
            return None
        group, version = parts[1], parts[2]
        available = self.apiservice_available(f"{version}.{group}")
        if available:
            return None
        if available is False:
            self.aggregated_unavailable.append(path)
            # the aggregator's proxyError: plain text, not a Status object
            return aiohttp.web.Response(status=503, text="service unavailable\n")
        if group == "metrics.k8s.io" and self.metrics:
            return None
        return _status(404, "NotFound", "the server could not find the requested resource")

    # writes -----------------------------------------------------------------------------------
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.subresource == "eviction" and request.resource is not None:
            return await self._evict(request)
        if (
            request.resource is not None
            and request.name is not None
            and (request.action == kmock.action.UPDATE or request.method == kmock.method.PUT)
        ):
            return await self._update(request, replace=request.method == kmock.method.PUT)
        if (
            request.action == kmock.action.CREATE
            and request.resource is not None
            and request.subresource is None
        ):
            self._system_fields(request.resource, request.data)
        response = await super()._handle(request)
        if (
            request.action == kmock.action.FETCH
            and request.resource is not None
            and request.name is not None
        ):
            await self._concurrent_write(request.resource, request.namespace, request.name)
        return response

    async def _update(self, request: kmock.Request, replace: bool) -> aiohttp.web.Response:
        """PATCH (JSON merge patch) or PUT (replace) of a stored object, with the apiserver's
        optimistic concurrency: a body carrying metadata.resourceVersion other than the
        current one is refused with 409 Conflict; every write makes a new resourceVersion."""
        res = request.resource
        assert res is not None and request.name is not None
        key = (res, request.namespace, request.name)
        body = request.data
        if not isinstance(body, dict):
            return _status(400, "BadRequest", "the body of the request was in an unknown format")
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return _status(404, "NotFound", f'{res.plural} "{request.name}" not found')
            obj = self.objects[key]
            current = obj.raw.get("metadata") or {}
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent is not None and str(sent) != str(current.get("resourceVersion")):
                self.conflicts.append((request.url.path, str(sent)))
                return _status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.plural} "{request.name}": '
                    + CONFLICT_MESSAGE,
                    details={"name": request.name, "kind": str(res.plural)},
                )
            change = copy.deepcopy(body)
            meta = change.setdefault("metadata", {})
            if res == RESOURCES["Deployment"] and request.subresource in (None, "scale"):
                spec = change.get("spec")
                if spec is not None and spec != (obj.raw.get("spec") or {}):
                    meta["generation"] = int(current.get("generation") or 1) + 1
            meta["resourceVersion"] = self.next_resource_version()
            if replace:
                for k in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                    if k in current and k not in meta:
                        meta[k] = current[k]
                if request.subresource == "status":  # PUT .../status replaces the status only
                    change = {**copy.deepcopy(obj.raw), "status": change.get("status")}
                    change["metadata"]["resourceVersion"] = meta["resourceVersion"]
                obj.history.append(change)
            else:
                obj.patch(change)
            raw = copy.deepcopy(obj.raw)
            await self._buses[res].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _concurrent_write(self, res: Any, namespace: str | None, name: str) -> None:
        kind = next((k for k, r in RESOURCES.items() if r == res), "")
        left = self.concurrent_writes.get((kind, name), 0)
        if left <= 0:
            return
        self.concurrent_writes[(kind, name)] = left - 1
        async with self._lock:
            key = (res, namespace, name)
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].patch(
                    {"metadata": {"resourceVersion": self.next_resource_version()}}
                )

    def _system_fields(self, resource: Any, body: K8sObject) -> None:
        """What the API server sets on create whatever the client sent: metadata.uid and
        creationTimestamp, metadata.generation 1 for a Deployment (its strategy's
        PrepareForCreate), and no status (a Deployment's starts empty)."""
        meta = body.setdefault("metadata", {})
        self._uids += 1
        meta["uid"] = f"uid-{meta.get('name')}-{self._uids}"
        meta["creationTimestamp"] = now_rfc3339()
        meta["resourceVersion"] = self.next_resource_version()
        if resource == RESOURCES["Deployment"]:
            meta["generation"] = 1
            body.pop("status", None)

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
                and not self.apiservice_available(f"{request.resource.version}.metrics.k8s.io")
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
            "metadata": {"resourceVersion": str(next(self._rvs))},
            "items": items,
        }

    metrics = False

    # test-side helpers (thread-safe: they run on the server's loop) -------------------------------
    # put/get deliberately shadow kmock's HTTP-client shortcuts (put(url, **kw), get(url, **kw)):
    # these tests reach the store through them and send HTTP through the backend under test.
    # put is another client's write (a controller's, the kubelet's): merged with no
    # precondition, it makes a new resourceVersion like any write
    def put(self, kind: str, obj: K8sObject) -> None:  # type: ignore[override]
        meta = obj["metadata"]
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.setdefault("uid", f"uid-{meta['name']}-{len(self.objects)}")
        obj = {**obj, "metadata": {**meta, "resourceVersion": self.next_resource_version()}}
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
    code: int,
    reason: str,
    message: str,
    causes: list[dict[str, str]] | None = None,
    details: dict[str, str] | None = None,
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
    if causes or details:
        body["details"] = {**(details or {}), **({"causes": causes} if causes else {})}
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
