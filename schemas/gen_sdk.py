#!/usr/bin/env python3
"""Generate src/engine/sdk_gen.rs: JSON request body -> typed AWS SDK input, per operation.

Reads the compact model (schemas/model.json) and writes, for every operation of the model,
an async function that converts the validated request JSON (API member names) into the SDK's
fluent builder calls and sends it, plus one `conv_<Shape>` function per structure or union
shape those operations reach. Everything follows smithy-rs naming, so the output compiles
against `aws-sdk-partnercentralselling` without hand edits.

Run from the repository root:

    python3 schemas/gen_sdk.py > src/engine/sdk_gen.rs && cargo fmt

It also reads the SDK's own source (the version pinned in Cargo.lock, from the cargo registry
under $CARGO_HOME, so run `cargo build` once first) to check that every setter and union
variant it emits exists, and to list the members the SDK treats as required-with-default
although the model says optional: the SDK's serializer always writes those (with the SDK
model's `@default`, usually `""`), so they appear on the wire even when the request omits them
(`SDK_DEFAULTED_MEMBERS`).

smithy-rs conventions the output relies on (all checked against the SDK source on every run):
- Setters are `set_<snake>(Option<T>)`, where <snake> follows smithy-rs word splitting:
  `AwsAccountId` -> `aws_account_id`, `WebsiteUrl` -> `website_url`, `EngagementARN` ->
  `engagement_arn`, `Type` -> `set_type` (the field itself is `r#type`).
- Type names are PascalCase of the shape name with acronyms folded (`FooARN` -> `FooArn`);
  union variants likewise.
- `build()` returns `Result<_, BuildError>` only if a required member targets a non-structure
  shape: required structure/union members stay `Option` ("careful" client nullability).
- Enums convert with `From<&str>`; values the SDK does not know become `Unknown` and are
  still sent verbatim.
"""

import glob
import hashlib
import json
import os
import re
import sys

# Every operation of the model: the bridge covers the whole API (the operation table in
# src/model/ops.rs has one row per model operation, and a test checks the two agree).
SUPPORTED = []

# smithy-rs keeps these whole when splitting words (`Ipv4`, `MiB`, ...).
COMPLETE_WORDS = ["ipv4", "ipv6", "sigv4", "mib", "gib", "kib", "ttl"]


def split_words(name):
    """smithy-rs `String.splitOnWordBoundaries()` (codegen-core `Strings.kt`)."""
    out = []
    cur = ""
    all_lower = name.lower() == name

    def end_of_acronym(cur, nxt, peek, dpeek):
        if not cur[-1].isupper() or not nxt.isupper():
            return False
        if peek is None or not peek.islower():
            return False
        # `AR[N]s`, `AC[L]s` stay together, `IAM[U]ser` splits.
        if peek == "s" and (dpeek is None or not dpeek.islower()):
            return False
        # `DynamoD[B]v2`
        if peek == "v" and dpeek is not None and dpeek.isdigit():
            return False
        return True

    for i, c in enumerate(name):
        peek = name[i + 1] if i + 1 < len(name) else None
        dpeek = name[i + 2] if i + 2 < len(name) else None
        in_complete = any(
            (cur + name[i:]).lower().startswith(w) for w in COMPLETE_WORDS
        ) and cur.lower() not in COMPLETE_WORDS
        boundary = False
        if not c.isalnum():
            if cur:
                out.append(cur.lower())
            cur = ""
            continue
        if not cur:
            cur += c
            continue
        if not in_complete and c.isupper() and (cur[-1].islower() or cur[-1].isdigit()):
            boundary = True
        elif not in_complete and all_lower and cur[-1].isdigit() and c.islower():
            boundary = True
        elif end_of_acronym(cur, c, peek, dpeek):
            boundary = True
        if boundary:
            out.append(cur.lower())
            cur = c
        else:
            cur += c
    if cur:
        out.append(cur)
    return out


def snake(name):
    return "_".join(w.lower() for w in split_words(name))


def pascal(name):
    return "".join(w.lower()[:1].upper() + w.lower()[1:] for w in split_words(name))


def rust_str(s):
    return json.dumps(s)


class Gen:
    def __init__(self, model):
        self.model = model
        self.shapes = model["shapes"]
        self.conv_needed = []  # structure/union shapes, in discovery order
        self.seen = set()

    def shape(self, name):
        return self.shapes[name]

    def need(self, name):
        if name not in self.seen:
            self.seen.add(name)
            self.conv_needed.append(name)

    def conv(self, name):
        """A Rust expression of type `fn(&Value, &str) -> Result<T, ConvError>`."""
        sh = self.shape(name)
        t = sh["type"]
        if t == "string":
            if "enum" in sh:
                return f"|v: &Value, p: &str| string(v, p).map(|s| types::{pascal(name)}::from(s.as_str()))"
            return "string"
        if t == "structure":
            self.need(name)
            return f"conv_{name}"
        if t == "list":
            inner = self.conv(sh["member"])
            return f"|v: &Value, p: &str| list(v, p, {inner})"
        if t == "map":
            key = self.shape(sh["key"])
            if key["type"] != "string" or "enum" in key:
                raise SystemExit(f"map {name}: only plain string keys are supported")
            inner = self.conv(sh["value"])
            return f"|v: &Value, p: &str| map(v, p, {inner})"
        simple = {
            "integer": "integer",
            "long": "long",
            "double": "double",
            "boolean": "boolean",
            "timestamp": "timestamp",
        }
        if t in simple:
            return simple[t]
        raise SystemExit(f"shape {name}: type {t} is not supported by the generator")

    def member_setters(self, sh, obj_var, path_var):
        lines = []
        for mname, m in sh.get("members", {}).items():
            f = self.conv(m["shape"])
            lines.append(
                f"        .set_{snake(mname)}(member({obj_var}, {path_var}, {rust_str(mname)}, {f})?)"
            )
        return lines

    def fallible_build(self, sh):
        """smithy-rs client codegen ("careful" nullability): a required member makes `build()`
        return `Result` unless it targets a structure or union, which stay `Option`."""
        return any(
            self.shape(sh["members"][r]["shape"])["type"] != "structure"
            for r in sh.get("required", [])
        )

    def gen_struct(self, name):
        sh = self.shape(name)
        members = list(sh.get("members", {}).keys())
        ty = f"types::{pascal(name)}"
        out = []
        out.append(f"fn conv_{name}(v: &Value, path: &str) -> Result<{ty}, ConvError> {{")
        if sh.get("union"):
            out.append(
                f"    let (name, inner, p) = union(v, path, &[{', '.join(rust_str(x) for x in members)}])?;"
            )
            out.append("    Ok(match name {")
            for mname, m in sh["members"].items():
                f = self.conv(m["shape"])
                out.append(
                    f"        {rust_str(mname)} => {ty}::{pascal(mname)}(({f})(inner, &p)?),"
                )
            out.append('        _ => unreachable!("union() only returns listed members"),')
            out.append("    })")
        else:
            out.append(
                f"    let o = object(v, path, &[{', '.join(rust_str(x) for x in members)}])?;"
            )
            out.append(f"    let b = {ty}::builder()")
            out.extend(self.member_setters(sh, "o", "path"))
            if self.fallible_build(sh):
                out.append("        ;")
                out.append("    built(b.build(), path)")
            else:
                out.append("        ;")
                out.append("    Ok(b.build())")
        out.append("}")
        return "\n".join(out)

    def gen_op(self, op):
        o = self.model["operations"][op]
        sh = self.shape(o["input"])
        members = list(sh.get("members", {}).keys())
        out = []
        out.append(f"async fn op_{snake(op)}(client: &Client, v: &Value, capture: BodyCapture) -> Result<(), ApiError> {{")
        out.append(
            f"    let o = object(v, \"\", &[{', '.join(rust_str(x) for x in members)}]).map_err(ConvError::into_api)?;"
        )
        out.append("    let send = || -> Result<_, ConvError> {")
        out.append(f"        Ok(client.{snake(op)}()")
        out.extend("    " + l for l in self.member_setters(sh, "o", '""'))
        out.append("        )")
        out.append("    };")
        out.append("    send()")
        out.append("        .map_err(ConvError::into_api)?")
        out.append("        .customize()")
        out.append("        .interceptor(capture)")
        out.append("        .send()")
        out.append("        .await")
        out.append("        .map(|_| ())")
        out.append("        .map_err(map_sdk_error)")
        out.append("}")
        return "\n".join(out)

    def generate(self):
        ops = [self.gen_op(op) for op in SUPPORTED]
        structs = []
        i = 0
        while i < len(self.conv_needed):
            structs.append(self.gen_struct(self.conv_needed[i]))
            i += 1
        self.defaulted = sdk_defaulted(self, self.sdk_dir)
        out = []
        out.append("// @generated by schemas/gen_sdk.py from schemas/model.json. DO NOT EDIT.")
        out.append("// Regenerate from the repository root with:")
        out.append("//     python3 schemas/gen_sdk.py > src/engine/sdk_gen.rs && cargo fmt")
        out.append("//! Generated JSON -> typed SDK input conversion, one function per supported operation")
        out.append("//! and one `conv_<Shape>` per structure or union shape they reach.")
        out.append("//!")
        out.append("//! Owns nothing by hand: edit `schemas/gen_sdk.py` (or the model) and regenerate.")
        out.append("//! Must not touch: retries, error classification, response capture (`sdk.rs`).")
        out.append("#![allow(non_snake_case)] // conv_<ShapeName> keeps the model's shape names")
        out.append("")
        out.append("use super::api::ApiError;")
        out.append("use super::sdk::conv::*;")
        out.append("use super::sdk::{map_sdk_error, BodyCapture};")
        out.append("use aws_sdk_partnercentralselling::{types, Client};")
        out.append("use serde_json::Value;")
        out.append("")
        out.append("/// SHA-256 of the schemas/model.json this file was generated from (a test compares it).")
        out.append("#[cfg(test)]")
        out.append(f"pub(super) const MODEL_SHA256: &str = {rust_str(self.fingerprint)};")
        out.append("")
        out.append("/// The operations this bridge can send, in the API's names.")
        out.append("pub const SUPPORTED_OPERATIONS: &[&str] = &[")
        for op in SUPPORTED:
            out.append(f"    {rust_str(op)},")
        out.append("];")
        out.append("")
        out.append("/// `(shape, member, default as JSON)`: members the model marks optional but the SDK holds")
        out.append("/// as plain fields with a default (its newer model says `@default`): when the request omits")
        out.append("/// one, the SDK's serializer still writes it, with that default.")
        out.append("pub const SDK_DEFAULTED_MEMBERS: &[(&str, &str, &str)] = &[")
        for shape, member, default in self.defaulted:
            out.append(f"    ({rust_str(shape)}, {rust_str(member)}, {rust_str(default)}),")
        out.append("];")
        out.append("")
        out.append("/// Convert and send one request; `None` when the operation is not supported.")
        out.append("pub(super) async fn dispatch(client: &Client, op: &str, v: &Value, capture: BodyCapture) -> Option<Result<(), ApiError>> {")
        out.append("    Some(match op {")
        for op in SUPPORTED:
            out.append(f"        {rust_str(op)} => op_{snake(op)}(client, v, capture).await,")
        out.append("        _ => return None,")
        out.append("    })")
        out.append("}")
        out.append("")
        out.extend(x + "\n" for x in ops)
        out.extend(x + "\n" for x in structs)
        return "\n".join(out)


def find_sdk_source():
    """The source directory of the aws-sdk-partnercentralselling version in Cargo.lock."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lock = open(os.path.join(root, "Cargo.lock")).read()
    mm = re.search(r'name = "aws-sdk-partnercentralselling"\nversion = "([^"]+)"', lock)
    if not mm:
        raise SystemExit("Cargo.lock has no aws-sdk-partnercentralselling")
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(
        os.path.join(home, "registry", "src", "*", f"aws-sdk-partnercentralselling-{mm.group(1)}")
    )
    if not found:
        raise SystemExit(f"SDK {mm.group(1)} source not found under {home}; run `cargo build` first")
    return found[0]


def struct_fields(path, struct):
    src = open(path).read()
    mm = re.search(r"pub struct " + struct + r" \{(.*?)\n\}", src, re.S)
    if not mm:
        raise SystemExit(f"struct {struct} not found in {path}")
    return dict(re.findall(r"pub (?:r#)?(\w+): (.*?),(?:\n|$)", mm.group(1)))


def sdk_defaulted(gen, sdk_dir):
    """Members optional in the model but plain (non-Option) fields in the SDK."""
    out = []
    for name in gen.conv_needed:
        sh = gen.shape(name)
        if sh.get("union"):
            continue
        path = os.path.join(sdk_dir, "src", "types", f"_{snake(name)}.rs")
        src = open(path).read()
        fields = struct_fields(path, pascal(name))
        for mname in sh.get("members", {}):
            ty = fields.get(snake(mname))
            if ty is None:
                raise SystemExit(f"{name}.{mname}: no field {snake(mname)} in the SDK")
            if "Option<" not in ty and mname not in sh.get("required", []):
                out.append((name, mname, builder_default(src, snake(mname), ty)))
    return out


def builder_default(src, field, ty):
    """The JSON text of the value `build()` fills in for an unset `field`."""
    mm = re.search(
        rf"\b{field}: self\.{field}\.(unwrap_or_default\(\)|unwrap_or_else\(\|\| (.*?)\)),", src
    )
    if not mm:
        raise SystemExit(f"no default for {field} in the SDK builder")
    if mm.group(2) is None:
        zero = {"::std::string::String": '""', "i32": "0", "i64": "0", "bool": "false", "f64": "0.0"}
        if ty not in zero:
            raise SystemExit(f"no known zero value for {ty}")
        return zero[ty]
    lit = re.fullmatch(r'"((?:[^"\\]|\\.)*)"\.to_owned\(\)', mm.group(2))
    if not lit:
        raise SystemExit(f"unrecognised default {mm.group(2)} for {field}")
    return json.dumps(json.loads('"' + lit.group(1) + '"'))


def check_sdk(gen, sdk_dir):
    """Cross-check generated setter names against the SDK source; report misses on stderr."""
    bad = 0
    for name in gen.conv_needed:
        sh = gen.shape(name)
        f = os.path.join(sdk_dir, "src", "types", f"_{snake(name)}.rs")
        if not os.path.exists(f):
            print(f"missing SDK type file for {name}: {f}", file=sys.stderr)
            bad += 1
            continue
        src = open(f).read()
        for mname in sh.get("members", {}):
            if sh.get("union"):
                if not re.search(rf"\b{pascal(mname)}\(", src):
                    print(f"{name}.{mname}: no variant {pascal(mname)}", file=sys.stderr)
                    bad += 1
            elif f"fn set_{snake(mname)}(" not in src:
                print(f"{name}.{mname}: no setter set_{snake(mname)}", file=sys.stderr)
                bad += 1
    return bad


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(root, "model.json"), "rb") as fh:
        raw = fh.read()
    model = json.loads(raw)
    SUPPORTED[:] = sorted(model["operations"])
    gen = Gen(model)
    gen.fingerprint = hashlib.sha256(raw).hexdigest()
    gen.sdk_dir = find_sdk_source()
    text = gen.generate()
    if check_sdk(gen, gen.sdk_dir):
        raise SystemExit("generated names do not match the SDK source (see above)")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
