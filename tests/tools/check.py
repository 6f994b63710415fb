"""Checks orc's machine-readable output with well-kept libraries (run from the tests).

  check.py schema SCHEMA FILE...   validate each JSON file against the JSON Schema
  check.py prom FILE               parse a Prometheus textfile; print its samples as JSON
"""
import json
import sys


def schema(path, files):
    import jsonschema

    with open(path) as f:
        s = json.load(f)
    jsonschema.Draft202012Validator.check_schema(s)
    v = jsonschema.Draft202012Validator(s)
    bad = 0
    for name in files:
        with open(name) as f:
            doc = json.load(f)
        for e in v.iter_errors(doc):
            bad += 1
            # Under the top-level anyOf (null or a report), show the report branch's errors.
            subs = [c for c in e.context if c.validator_value != "null"] or [e]
            for c in subs:
                print(f"{name}: {'/'.join(map(str, c.absolute_path))}: {c.message}")
    print(f"{len(files)} checked, {bad} errors")
    return 1 if bad else 0


def prom(path):
    from prometheus_client.parser import text_string_to_metric_families

    with open(path) as f:
        text = f.read()
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append({"family": fam.name, "type": fam.type, "name": s.name,
                        "labels": s.labels, "value": s.value})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    sys.exit(schema(sys.argv[2], sys.argv[3:]) if cmd == "schema" else prom(sys.argv[2]))
