#!/usr/bin/env python3
"""Generate schemas/model.json, the compact constraints file cosell embeds.

Reads the official Partner Central Selling service model (botocore JSON) and
keeps only what validation, the emulator and the SDK bridge need: operations
(input, output, errors, idempotency, and the paginator from the service's
paginators file: input token, output token, result key, limit key), and for every shape its type, members,
required list, enum, pattern, min/max, union, idempotency tokens, sensitive
flag and exception/fault flags. Documentation text is dropped.

Usage (from the repository root, with ../shared beside it):

    python3 schemas/gen_model.py \
        ../shared/reference/partnercentral-selling-2022-07-26.service.json \
        ../shared/reference/partnercentral-selling-2022-07-26.paginators.json \
        > schemas/model.json

The output is deterministic (sorted operations and shapes, member order kept
as in the model), so a diff shows exactly what changed in the upstream model.
"""
import json
import sys

FORMAT_VERSION = 1
SHAPE_KEYS = ("type", "required", "enum", "pattern", "min", "max", "union",
              "sensitive", "exception", "fault", "timestampFormat")


def compact_shape(shape):
    out = {}
    for key in SHAPE_KEYS:
        if key in shape:
            out[key] = shape[key]
    if "members" in shape:
        members = {}
        for name, member in shape["members"].items():
            m = {"shape": member["shape"]}
            if member.get("idempotencyToken"):
                m["idempotencyToken"] = True
            members[name] = m
        out["members"] = members
    if "member" in shape:
        out["member"] = shape["member"]["shape"]
    if "key" in shape:
        out["key"] = shape["key"]["shape"]
    if "value" in shape:
        out["value"] = shape["value"]["shape"]
    if "error" in shape and "httpStatusCode" in shape["error"]:
        out["httpStatusCode"] = shape["error"]["httpStatusCode"]
    return out


def main(path, paginators_path):
    with open(path, encoding="utf-8") as f:
        model = json.load(f)
    with open(paginators_path, encoding="utf-8") as f:
        paginators = json.load(f)["pagination"]
    for name in paginators:
        if name not in model["operations"]:
            sys.exit("paginator for unknown operation %s" % name)
    meta = model["metadata"]
    operations = {}
    for name in sorted(model["operations"]):
        op = model["operations"][name]
        o = {}
        if "input" in op:
            o["input"] = op["input"]["shape"]
        if "output" in op:
            o["output"] = op["output"]["shape"]
        o["errors"] = [e["shape"] for e in op.get("errors", [])]
        if op.get("idempotent"):
            o["idempotent"] = True
        if name in paginators:
            p = paginators[name]
            o["paginator"] = {k: p[k] for k in ("input_token", "output_token", "result_key",
                                                 "limit_key") if k in p}
        operations[name] = o
    shapes = {name: compact_shape(model["shapes"][name]) for name in sorted(model["shapes"])}
    out = {
        "format": FORMAT_VERSION,
        "source": "partnercentral-selling-%s.service.json" % meta["apiVersion"],
        "metadata": {k: meta[k] for k in ("apiVersion", "jsonVersion", "protocol",
                                           "signingName", "targetPrefix", "endpointPrefix",
                                           "serviceId") if k in meta},
        "operations": operations,
        "shapes": shapes,
    }
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gen_model.py SERVICE_JSON PAGINATORS_JSON > schemas/model.json")
    main(sys.argv[1], sys.argv[2])
