"""The committed Postman collection is what infra/postman.py makes of openapi.json, and is a valid v2.1
collection that covers every operation."""

from __future__ import annotations

import copy
import json

import jsonschema

from infra import postman

DOC = json.loads(postman.OPENAPI.read_text())
# The part of Postman's v2.1 collection schema (schema.getpostman.com/json/collection/v2.1.0) this file uses.
V21 = {
    "type": "object", "required": ["info", "item"],
    "properties": {
        "info": {"type": "object", "required": ["name", "schema"],
                 "properties": {"schema": {"const": postman.SCHEMA}, "name": {"type": "string"}}},
        "auth": {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["bearer", "noauth"]}}},
        "variable": {"type": "array", "items": {"type": "object", "required": ["key"]}},
        "item": {"type": "array", "items": {"$ref": "#/$defs/folder"}},
    },
    "$defs": {
        "folder": {"type": "object", "required": ["name", "item"], "properties": {
            "item": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}}}},
        "item": {"type": "object", "required": ["name", "request"], "properties": {"request": {
            "type": "object", "required": ["method", "url"], "properties": {
                "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                "url": {"type": "object", "required": ["raw", "host", "path"], "properties": {
                    "host": {"const": ["{{baseUrl}}"]}, "path": {"type": "array", "items": {"type": "string"}},
                    "query": {"type": "array", "items": {"type": "object", "required": ["key", "value"]}},
                    "variable": {"type": "array", "items": {"type": "object", "required": ["key"]}}}},
                "body": {"type": "object", "required": ["mode", "raw"],
                         "properties": {"mode": {"const": "raw"}, "raw": {"type": "string"}}}}}}},
    },
}


def test_the_committed_collection_is_the_generated_one():
    assert postman.COLLECTION.read_text() == postman.render(DOC), \
        "infra/postman/switchyard.postman_collection.json is stale: run `python -m infra.postman`"


def test_it_is_a_v21_collection_with_the_local_variables_and_bearer_auth():
    collection = json.loads(postman.COLLECTION.read_text())
    jsonschema.validate(collection, V21)
    assert {v["key"]: v["value"] for v in collection["variable"]} == {"baseUrl": "http://127.0.0.1:8080",
                                                                     "apiKey": ""}
    assert collection["auth"]["bearer"][0]["value"] == "{{apiKey}}"


def test_every_operation_is_one_request_in_its_tags_folder():
    collection = postman.collection(DOC)
    got = {}
    for folder in collection["item"]:
        for item in folder["item"]:
            request = item["request"]
            path = "/" + "/".join(f"{{{s[1:]}}}" if s.startswith(":") else s for s in request["url"]["path"])
            key = (request["method"], path)
            assert key not in got, f"{key} twice"
            got[key] = folder["name"]
    expected = {(m.upper(), p): postman.FOLDERS.get(op["tags"][0], op["tags"][0])
                for p, methods in DOC["paths"].items() for m, op in methods.items()}
    assert got == expected


def test_bodies_come_from_the_examples_and_parse():
    collection = postman.collection(DOC)
    requests = {(i["request"]["method"], i["request"]["url"]["raw"]): i["request"]
                for f in collection["item"] for i in f["item"]}
    chat = requests[("POST", "{{baseUrl}}/api/v1/chat/completions")]
    example = DOC["paths"]["/api/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert json.loads(chat["body"]["raw"]) == example
    for request in requests.values():
        if "body" in request:
            json.loads(request["body"]["raw"])
    # where the document has no example, the schema's required fields
    assert json.loads(requests[("POST", "{{baseUrl}}/api/v1/keys")]["body"]["raw"]) == {"name": "string"}


def test_a_new_tag_gets_a_folder_of_its_own():
    doc = copy.deepcopy(DOC)
    doc["paths"]["/api/v1/brand-new"] = {"get": {"tags": ["brand-new"], "summary": "Something new",
                                                 "parameters": [{"name": "q", "in": "query", "required": True,
                                                                 "schema": {"type": "string"}}],
                                                 "responses": {}}}
    folders = {f["name"]: f["item"] for f in postman.collection(doc)["item"]}
    assert [i["name"] for i in folders["brand-new"]] == ["Something new"]
    url = folders["brand-new"][0]["request"]["url"]
    assert url["raw"] == "{{baseUrl}}/api/v1/brand-new?q=" and url["query"][0]["disabled"] is False
