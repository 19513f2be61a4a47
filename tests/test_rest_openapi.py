"""What OpenAPI documents is what the REST routes answer.

Every route is called for real, and each answer is validated against the JSON schema that
`/openapi.json` gives for that path, method and status. A field added to an answer but not to
its response model (or the reverse) fails here.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from bson import ObjectId
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support import auth, campaign_body, future, token


def validator_for(spec: dict[str, Any], path: str, method: str, status: int) -> Any:
    operation = spec["paths"][path][method]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    registry: Registry[Any] = Registry().with_resource(
        "urn:openapi", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(_rebase(schema), registry=registry)


def _rebase(node: Any) -> Any:
    """Points `#/components/...` references at the registered spec."""
    if isinstance(node, dict):
        return {
            k: (f"urn:openapi{v}" if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


async def test_every_route_answers_what_openapi_documents(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    org = ObjectId()
    headers = auth(token(org=org))
    checked: set[tuple[str, str, int]] = set()

    async def call(method: str, url: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        kw.setdefault("headers", headers)
        response = await client.request(method, url, **kw)
        assert response.status_code == status, (url, response.text)
        body: dict[str, Any] = response.json()
        validator_for(spec, path, method.lower(), status).validate(body)
        checked.add((path, method.lower(), status))
        return body

    async def download(url: str, path: str) -> None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        documented = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert response.headers["content-type"].split(";")[0] in documented
        checked.add((path, "get", 200))

    c = "/api/campaigns"
    one = "/api/campaigns/{id}"
    created = await call(
        "POST",
        c,
        c,
        201,
        json=campaign_body(
            newContacts=[
                {"firstName": "Ana", "phoneNumber": "+14155550101"},
                {"phoneNumber": "bad"},
            ]
        ),
    )
    id = created["data"]["_id"]
    broken = {**created, "data": {**created["data"], "stats": {"total": "3"}}}
    with pytest.raises(jsonschema.ValidationError):  # the check itself can fail
        validator_for(spec, c, "post", 201).validate(broken)
    await call("POST", c, c, 400, json=campaign_body(name=""))
    await call("GET", f"{c}?status=scheduled,draft&search=spring", c, 200)
    await call("GET", f"{c}/{id}", one, 200)
    await call("GET", f"{c}/{ObjectId()}", one, 404)
    await call(
        "PATCH", f"{c}/{id}", one, 200, json={"name": "Renamed", "addRecipients": [str(ObjectId())]}
    )
    await call("GET", f"{c}/{id}/recipients", f"{one}/recipients", 200)
    await download(f"{c}/{id}/recipients.csv", f"{one}/recipients.csv")
    await call("GET", f"{c}/{ObjectId()}/recipients.csv", f"{one}/recipients.csv", 404)
    await call("POST", f"{c}/{id}/pause", f"{one}/pause", 200)
    await call("POST", f"{c}/{id}/pause", f"{one}/pause", 409)
    await call("POST", f"{c}/{id}/resume", f"{one}/resume", 200)
    await call(
        "POST", f"{c}/{id}/schedule", f"{one}/schedule", 200, json={"scheduleDate": future(2)}
    )
    await call("POST", f"{c}/{id}/send", f"{one}/send", 200)
    await call("POST", f"{c}/{id}/cancel", f"{one}/cancel", 200)
    await call("POST", f"{c}/{id}/duplicate", f"{one}/duplicate", 201)
    await call("GET", f"{c}/{id}/failures", f"{one}/failures", 200)
    await call("POST", f"{c}/{id}/retry-failed", f"{one}/retry-failed", 409)
    await call(
        "POST", f"{c}/{id}/retry-failed", f"{one}/retry-failed", 400, json={"codes": ["30005"]}
    )
    await call("DELETE", f"{c}/{id}", one, 200)

    k = "/api/contacts"
    kone = "/api/contacts/{id}"
    contact = await call("POST", k, k, 201, json={"phoneNumber": "+14155550199", "tags": ["x"]})
    cid = contact["data"]["_id"]
    await call("POST", k, k, 409, json={"phoneNumber": "+14155550199"})
    await call("GET", f"{k}?search=ana&tags=x", k, 200)
    await download("/api/contacts.csv?tags=x", "/api/contacts.csv")
    await call("GET", f"/api/contacts.csv?search={'x' * 101}", "/api/contacts.csv", 400)
    await call("GET", f"{k}/{cid}", kone, 200)
    await call("PATCH", f"{k}/{cid}", kone, 200, json={"firstName": "Zoe"})
    await call("POST", f"{k}/{cid}/opt-out", f"{kone}/opt-out", 200, json={"reason": "STOP"})
    await call("POST", f"{k}/{cid}/opt-in", f"{kone}/opt-in", 200)
    msgs = f"{kone}/messages"
    key = {"Idempotency-Key": "openapi-1", **headers}
    await call("POST", f"{k}/{cid}/messages", msgs, 201, json={"body": "Hi"}, headers=key)
    await call("POST", f"{k}/{cid}/messages", msgs, 400, json={"body": "Hi"})
    await call("GET", f"{k}/{cid}/messages", msgs, 200)
    await call("GET", f"{k}/{ObjectId()}/messages", msgs, 404)
    await call("GET", "/api/conversations?unread=true", "/api/conversations", 200)
    await call("DELETE", f"{k}/{cid}", kone, 200)
    await call("DELETE", f"{k}/{cid}", kone, 404)

    s = "/api/suppressions"
    await call("POST", s, s, 200, json={"phoneNumbers": ["+14155550188", "nope"], "reason": "x"})
    await call("POST", s, s, 400, json={"phoneNumbers": []})
    await call("GET", f"{s}?search=1415&limit=5", s, 200)
    await call("GET", f"{s}?after=broken", s, 400)
    await call("DELETE", s, s, 200, json={"phoneNumbers": ["+14155550188"]})
    await call("DELETE", s, s, 400, json={"phoneNumbers": []})

    documented = {
        (path, method)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
    }
    assert documented == {(p, m) for p, m, _ in checked}  # every documented route was called


async def test_request_models_mark_what_is_required(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["CreateCampaignInput"]["required"]) == {"name", "message"}
    assert schemas["CreateCampaignInput"]["properties"]["name"]["type"] == "string"
    assert schemas["CreateContactInput"]["required"] == ["phoneNumber"]
    answer = schemas["CampaignOut"]
    assert {"_id", "userIds", "stats", "createdBy"} <= set(answer["required"])
