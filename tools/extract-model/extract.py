#!/usr/bin/env python3
"""Extracts the oVirt API v4 model (types, enums, services) into model/ovirt-api.json.

Facts only: names, XML element names, attribute kinds, link rels, HTTP verbs and paths,
parameters. Two sources:

- the official Python SDK (`ovirtsdk4`, its `types`, `readers`, `writers` and `services`
  modules), which encodes every wire name exactly as clients use it;
- the API model's service definitions (`ovirt-engine-api-model`, `src/main/java/services`),
  which the SDK does not carry: the output type of `get`/`list` and the mandatory inputs.

Run by hand when the model is refreshed (see tools/extract-model/README.md); the build never
runs Python.
"""
import argparse
import ast
import enum
import importlib
import json
import os
import re
import subprocess
import sys

PRIMITIVES = {
    "read_string": "string",
    "read_integer": "integer",
    "read_boolean": "boolean",
    "read_decimal": "decimal",
    "read_date": "date",
}
PRIMITIVE_LISTS = {"read_strings": "string", "read_integers": "integer", "read_booleans": "boolean",
                   "read_decimals": "decimal", "read_dates": "date"}


def snake(name):
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def parse(path):
    with open(path) as f:
        return ast.parse(f.read())


def classes(tree):
    return {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}


def method(cls, name):
    for f in cls.body:
        if isinstance(f, ast.FunctionDef) and f.name == name:
            return f
    return None


def const(node):
    return node.value if isinstance(node, ast.Constant) else None


# ---------------------------------------------------------------------------------------
# Types and enums


def read_enums(types_mod):
    out = []
    for name, obj in vars(types_mod).items():
        if isinstance(obj, type) and issubclass(obj, enum.Enum) and obj is not enum.Enum \
                and obj.__module__ == types_mod.__name__:
            out.append({"name": name, "values": [m.value for m in obj]})
    return sorted(out, key=lambda e: e["name"])


def reader_attributes(cls):
    """tag -> (attribute, kind, element type) from a XxxReader.read_one, plus link rels."""
    attrs = []
    read_one = method(cls, "read_one")
    for node in ast.walk(read_one):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        if not (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
                and test.left.id == "tag" and isinstance(test.ops[0], ast.Eq)):
            continue
        tag = const(test.comparators[0])
        if tag == "link":
            continue
        stmt = node.body[0]
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
            raise SystemExit("unexpected reader shape in %s for %s" % (cls.name, tag))
        attr = stmt.targets[0].attr
        call = stmt.value
        fn = call.func.attr
        owner = call.func.value.id
        if owner == "Reader":
            if fn in PRIMITIVES:
                attrs.append((tag, attr, PRIMITIVES[fn], False))
            elif fn in PRIMITIVE_LISTS:
                attrs.append((tag, attr, PRIMITIVE_LISTS[fn], True))
            elif fn in ("read_enum", "read_enums"):
                enum_name = call.args[0].attr
                attrs.append((tag, attr, enum_name, fn == "read_enums"))
            else:
                raise SystemExit("unknown reader function %s" % fn)
        else:
            elem = owner[: -len("Reader")]
            attrs.append((tag, attr, elem, fn == "read_many"))
    links = {}
    proc = method(cls, "_process_link")
    if proc is not None:
        for node in ast.walk(proc):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                    and isinstance(node.test.left, ast.Name) and node.test.left.id == "rel":
                rel = const(node.test.comparators[0])
                # body: if obj.X is not None: obj.X.href = href
                inner = node.body[0]
                attr = inner.test.left.attr
                links[attr] = rel
    xml_attrs = []
    for node in ast.walk(read_one):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get_attribute":
            xml_attrs.append(const(node.args[0]))
    return attrs, links, xml_attrs


def writer_names(cls):
    """attribute -> (element name, item name) from a XxxWriter.write_one, and defaults."""
    names = {}
    write_one = method(cls, "write_one")
    singular = None
    for node in ast.walk(write_one):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "singular":
            singular = const(node.body[0].value)
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Attribute)
                and isinstance(node.test.left.value, ast.Name) and node.test.left.value.id == "obj"):
            continue
        attr = node.test.left.attr
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Call):
            call = first.value
            fn = call.func.attr
            if fn == "write_start":  # a list of primitives: <plural><item>v</item>...</plural>
                plural = const(call.args[0])
                item = None
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                            and sub.func.attr.startswith("write_") and sub.func.attr not in (
                                "write_start", "write_end") and len(sub.args) >= 2:
                        item = const(sub.args[1])
                names[attr] = (plural, item)
            elif fn == "write_many":
                names[attr] = (const(call.args[3]), const(call.args[2]))
            elif fn == "write_one":
                names[attr] = (const(call.args[2]), None)
            else:  # Writer.write_string(writer, 'name', value)
                names[attr] = (const(call.args[1]), None)
    plural = None
    write_many = method(cls, "write_many")
    for node in ast.walk(write_many):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "plural":
            plural = const(node.body[0].value)
    return names, singular, plural


def read_types(types_mod, readers, writers, enum_names):
    out = []
    for name, obj in vars(types_mod).items():
        if not (isinstance(obj, type) and obj.__module__ == types_mod.__name__):
            continue
        if issubclass(obj, enum.Enum) or name == "Struct":
            continue
        base = obj.__bases__[0].__name__
        rcls = readers[name + "Reader"]
        wcls = writers[name + "Writer"]
        attrs, links, xml_attrs = reader_attributes(rcls)
        wnames, singular, plural = writer_names(wcls)
        attributes = []
        for tag, attr, kind, is_list in attrs:
            entry = {"name": attr, "xml": tag, "type": kind}
            if is_list:
                entry["list"] = True
                if attr in wnames and wnames[attr][1]:
                    entry["item"] = wnames[attr][1]
                if attr in wnames and wnames[attr][0] != tag:
                    raise SystemExit("%s.%s: reader tag %s, writer tag %s" % (name, attr, tag, wnames[attr][0]))
            if attr in links:
                entry["link"] = links[attr]
            attributes.append(entry)
        # `id` and `href` are XML attributes; the readers read them as such.
        xml_attributes = sorted(a for a in set(xml_attrs) if a not in ("rel",))
        out.append({
            "name": name,
            "base": base,
            "xml": singular,
            "xml_plural": plural,
            "xml_attributes": xml_attributes,
            "attributes": sorted(attributes, key=lambda a: a["name"]),
        })
    return sorted(out, key=lambda t: t["name"])


def fill_item_names(types_list, enum_names):
    by_name = {t["name"]: t for t in types_list}
    for t in types_list:
        for a in t["attributes"]:
            if a.get("list") and "item" not in a:
                if a["type"] in by_name:
                    a["item"] = by_name[a["type"]]["xml"]
                else:
                    raise SystemExit("no item name for %s.%s" % (t["name"], a["name"]))


# ---------------------------------------------------------------------------------------
# Services


def sdk_param_types(func):
    """Parameter name -> (type name, is_list) from Service._check_types([...])."""
    out = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "_check_types":
            for elt in node.args[0].elts:
                pname = const(elt.elts[0])
                tnode = elt.elts[2]
                if isinstance(tnode, ast.Attribute):  # types.Vm
                    out[pname] = tnode.attr
                elif isinstance(tnode, ast.Name):
                    out[pname] = {"str": "string", "int": "integer", "bool": "boolean",
                                  "float": "decimal", "list": "list"}.get(tnode.id, tnode.id)
    return out


def sdk_methods(cls):
    methods = []
    for f in cls.body:
        if not isinstance(f, ast.FunctionDef) or f.name.startswith("_") or f.name == "service" \
                or f.name.endswith("_service"):
            continue
        call = next(n for n in ast.walk(f) if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute) and n.func.attr.startswith("_internal"))
        internal = call.func.attr[len("_internal_"):]
        ptypes = sdk_param_types(f)
        params = [a.arg for a in f.args.args[1:] if a.arg not in ("headers", "query", "wait")]
        query = set()
        for node in ast.walk(f):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) \
                    and isinstance(node.targets[0].value, ast.Name) and node.targets[0].value.id == "query":
                query.add(const(node.targets[0].slice))
        m = {"sdk": f.name, "kind": internal}
        if internal == "action":
            m["http"] = "POST"
            m["path"] = const(call.args[1])
            member = const(call.args[2])
            if member:
                m["member"] = member
        else:
            m["http"] = {"get": "GET", "add": "POST", "update": "PUT", "remove": "DELETE"}[internal]
        body = None
        if internal in ("add", "update"):
            body = call.args[0].id
        plist = []
        for p in params:
            wire = p[:-1] if p.endswith("_") else p  # async_, from_: Python keywords
            entry = {"name": wire, "type": ptypes.get(p, "string")}
            if p == body:
                entry["in"] = "body"
            elif internal == "action":
                entry["in"] = "action"
            elif wire in query:
                entry["in"] = "query"
            else:
                raise SystemExit("%s.%s: where does %s go?" % (cls.name, f.name, p))
            plist.append(entry)
        m["params"] = plist
        methods.append(m)
    return methods


def sdk_locators(cls, all_classes):
    """Sub-services by path segment, and the `{id}` child of a collection service."""
    locs = {}
    child = None
    seen = set()
    c = cls
    while c is not None:
        for f in c.body:
            if isinstance(f, ast.FunctionDef) and f.name.endswith("_service") and f.name not in seen:
                seen.add(f.name)
                ret = next(n for n in ast.walk(f) if isinstance(n, ast.Return)).value
                target = ret.func.id
                fmt = const(ret.args[1].left) if isinstance(ret.args[1], ast.BinOp) else None
                args = [a.arg for a in f.args.args[1:]]
                if args == ["id"]:
                    child = target
                elif fmt and fmt.startswith("%s/"):
                    locs[fmt[3:]] = target
        base = c.bases[0].id if c.bases else None
        c = all_classes.get(base) if base and base != "Service" else None
    return [{"segment": s, "service": t} for s, t in sorted(locs.items())], child


# ---------------------------------------------------------------------------------------
# API model (Java DSL): output types and mandatory inputs per method


JAVA_PRIM = {"String": "string", "Integer": "integer", "Boolean": "boolean", "Date": "date",
             "BigDecimal": "decimal", "Decimal": "decimal", "Long": "integer"}


def strip_java_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def top_level(body):
    """The body with nested `{...}` blocks removed."""
    out, depth = [], 0
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def java_path(expr):
    """`vm().cluster().id()` -> `vm.cluster.id`; `disks()[COLLECTION].id()` -> `disks[].id`."""
    expr = expr.replace("[COLLECTION]", "[]")
    parts = re.findall(r"(\w+)\(\)(\[\])?", expr)
    return ".".join(snake(p) + (b or "") for p, b in parts)


def parse_requirements(body):
    groups = []
    for m in re.finditer(r"\bor\((.*?)\);", body, flags=re.S):
        alts = re.findall(r"mandatory\(([^;]*?\))\)", m.group(1))
        if alts:
            groups.append([java_path(a) for a in alts])
    body_wo_or = re.sub(r"\bor\((.*?)\);", "", body, flags=re.S)
    for m in re.finditer(r"\bmandatory\((.*?\))\);", body_wo_or):
        groups.append([java_path(m.group(1))])
    return groups


def child_blocks(body):
    """(name, inner body) of the `interface Name ... {}` blocks directly inside `body`."""
    out = []
    depth = 0
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            m = re.match(r"interface\s+(\w+)[^{;]*\{", body[i:])
            if m and (i == 0 or not (body[i - 1].isalnum() or body[i - 1] == "_")):
                start = i + m.end()
                d, j = 1, start
                while d:
                    d += {"{": 1, "}": -1}.get(body[j], 0)
                    j += 1
                out.append((m.group(1), body[start:j - 1], i, j))
                i = j
                continue
        i += 1
    return out


def without_children(body):
    parts, last = [], 0
    for _, _, a, b in child_blocks(body):
        parts.append(body[last:a])
        last = b
    parts.append(body[last:])
    return "".join(parts)


def method_facts(body):
    own = without_children(body)
    outs = []
    for om in re.finditer(r"@Out\s+([\w.]+?)(\[\])?\s+(\w+)\(\)", top_level(own)):
        t = om.group(1).split(".")[-1]
        outs.append({"name": snake(om.group(3)), "type": JAVA_PRIM.get(t, t), "list": bool(om.group(2))})
    return outs, parse_requirements(own)


def read_api_model(repo):
    """Service -> {Java method key -> {outputs, requirements}}; overloads keyed `AddFromScratch`."""
    files = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", "HEAD", "src/main/java/services"],
                           capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for path in files:
        if not path.endswith("Service.java"):
            continue
        text = strip_java_comments(subprocess.run(["git", "-C", repo, "show", "HEAD:" + path],
                                                  capture_output=True, text=True, check=True).stdout)
        m = re.search(r"public\s+interface\s+(\w+)[^{]*\{", text)
        if not m:
            continue
        svc_body = text[m.end():text.rindex("}")]
        entry = {}
        for name, body, _, _ in child_blocks(svc_body):
            outs, reqs = method_facts(body)
            entry[name] = {"outputs": outs, "requirements": reqs}
            for child, cbody, _, _ in child_blocks(body):
                couts, creqs = method_facts(cbody)
                entry[name + child] = {"outputs": outs + couts, "requirements": reqs + creqs}
        out[m.group(1)] = entry
    return out


def java_method_key(sdk_name, java_methods):
    camel = "".join(p.capitalize() for p in sdk_name.split("_"))
    return camel if camel in java_methods else None


def read_services(services_tree, api_model):
    all_classes = classes(services_tree)
    out = []
    for name, cls in sorted(all_classes.items()):
        if name == "Service":
            continue
        locators, child = sdk_locators(cls, all_classes)
        java = dict(api_model.get(name, {}))
        base_cls = cls
        while base_cls.bases and base_cls.bases[0].id != "Service":  # inherited Java methods
            base_cls = all_classes[base_cls.bases[0].id]
            for k, v in api_model.get(base_cls.name, {}).items():
                java.setdefault(k, v)
        methods = sdk_methods(cls)
        for m in methods:
            key = java_method_key(m["sdk"], java)
            info = java.get(key) if key else None
            if m["kind"] == "get" and info is None:
                key = "List" if m["sdk"] == "list" else "Get"
                info = java.get(key)
            if info:
                outs = info["outputs"]
                if outs:
                    m["outputs"] = outs
                # inherited requirement blocks: an overload keeps its parent's requirements
                if info["requirements"]:
                    m["requirements"] = info["requirements"]
            if "outputs" not in m and m["kind"] in ("add", "update"):
                # the Java overload is not found by name: the body is In/Out in every add/update
                body = next(p for p in m["params"] if p["in"] == "body")
                m["outputs"] = [{"name": body["name"], "type": body["type"], "list": False}]
        base = cls.bases[0].id if cls.bases else "Service"
        entry = {"name": name, "base": base if base != "Service" else None, "methods": methods,
                 "locators": locators}
        if child:
            entry["item"] = child
        out.append(entry)
    return out


def resolve_list_params(service_list, type_list):
    """`_check_types` says only `list` for list parameters: their item type is the `Action`
    attribute of the same name (every such parameter is one)."""
    action = {a["name"]: a for a in next(t for t in type_list if t["name"] == "Action")["attributes"]}
    for svc in service_list:
        for m in svc["methods"]:
            for p in m["params"]:
                if p["type"] == "list":
                    a = action[p["name"]]
                    p["type"] = a["type"]
                    p["list"] = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api-model", required=True, help="a git dir of ovirt-engine-api-model")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "model", "ovirt-api.json"))
    args = ap.parse_args()

    sdk = importlib.import_module("ovirtsdk4")
    sdk_dir = os.path.dirname(sdk.__file__)
    from ovirtsdk4 import version as sdk_version
    types_mod = importlib.import_module("ovirtsdk4.types")
    readers = classes(parse(os.path.join(sdk_dir, "readers.py")))
    writers = classes(parse(os.path.join(sdk_dir, "writers.py")))
    services = parse(os.path.join(sdk_dir, "services.py"))

    enums = read_enums(types_mod)
    enum_names = {e["name"] for e in enums}
    type_list = read_types(types_mod, readers, writers, enum_names)
    fill_item_names(type_list, enum_names)
    api_model = read_api_model(args.api_model)
    service_list = read_services(services, api_model)
    resolve_list_params(service_list, type_list)
    commit = subprocess.run(["git", "-C", args.api_model, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()

    model = {
        "format": 1,
        "sources": {"sdk": "ovirt-engine-sdk-python " + sdk_version.VERSION,
                    "api_model": "ovirt-engine-api-model " + commit},
        "root": "SystemService",
        "counts": {"types": len(type_list), "enums": len(enums), "services": len(service_list),
                   "methods": sum(len(s["methods"]) for s in service_list)},
        "enums": enums,
        "types": type_list,
        "services": service_list,
    }
    with open(args.out, "w") as f:
        json.dump(model, f, indent=1, sort_keys=False)
        f.write("\n")
    print(json.dumps(model["counts"]), "->", os.path.normpath(args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
