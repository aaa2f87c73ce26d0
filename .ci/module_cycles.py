#!/usr/bin/env python3
"""Fails when the files of a crate import each other in a cycle (docs/design.md, "Layers").

A file A depends on file B when A names an item of B: `crate::b::...`, `super::...`, or a name
that the crate root re-exports from B (`crate::Name` with `pub use b::Name` in lib.rs). The
crate root itself (lib.rs, main.rs) and `mod.rs` files that only declare and re-export are not
nodes: they sit above everything they declare. Tests modules (`#[cfg(test)]` onwards) are
ignored. Prints every strongly connected component with more than one file, and exits 1.
"""
import os
import re
import sys

CRATES = ["devices/src", "engine/src", "backup/src", "tools/src", "sim/src", "fuzz/src", "faultfs/src"]


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3]
    parts = rel.split(os.sep)
    if parts == ["lib"] or parts == ["main"]:
        return ""
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def strip_tests(text):
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]


def reexports(root, files):
    """Name -> defining module, from `pub use a::b::{X, Y}` / `pub(crate) use` in any file."""
    names = {}
    for path in files:
        here = module_of(root, path)
        text = strip_tests(open(path).read())
        for m in re.finditer(r"pub(?:\(crate\))?\s+use\s+([\w:]+?)::(\{[^}]*\}|\w+)\s*;", text):
            base, items = m.group(1), m.group(2)
            if base.startswith("crate::"):
                target = base[len("crate::"):]
            elif base.startswith("self::"):
                target = (here + "::" if here else "") + base[len("self::"):]
            elif base.split("::")[0] in ("std", "core", "alloc") or "::" not in base and not here == "":
                target = (here + "::" if here else "") + base
            else:
                target = (here + "::" if here else "") + base
            for item in re.findall(r"\w+", items.strip("{}")):
                if item in ("self", "as"):
                    continue
                exporter = here
                names.setdefault((exporter, item), target)
    return names


def resolve(mod, modules):
    """The longest prefix of `mod` that is a file module."""
    parts = mod.split("::")
    while parts:
        cand = "::".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bad = False
    for crate in CRATES:
        root = os.path.join(top, crate)
        if not os.path.isdir(root):
            continue
        files = []
        for d, _, fs in os.walk(root):
            if os.path.basename(d) == "bin":
                continue
            files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
        modules = {module_of(root, f): f for f in files}
        exports = reexports(root, files)
        edges = {m: set() for m in modules}
        for mod, path in modules.items():
            text = strip_tests(open(path).read())
            text = re.sub(r"//[^\n]*", "", text)
            refs = set()
            for m in re.finditer(r"\bcrate::((?:\w+::)*)(\{[^}]*\}|\w+)", text):
                base = m.group(1).rstrip(":")
                tail = m.group(2)
                names = re.findall(r"\w+", tail) if tail.startswith("{") else [tail]
                for n in names:
                    full = base + "::" + n if base else n
                    t = exports.get((base, n))
                    r = resolve(t, modules) if t else resolve(full, modules)
                    if r is None and base:
                        r = resolve(base, modules)
                    if r:
                        refs.add(r)
            for m in re.finditer(r"\bsuper::([\w:]+)", text):
                parent = mod.rsplit("::", 1)[0] if "::" in mod else ""
                if os.path.basename(path) == "mod.rs":
                    parent = mod.rsplit("::", 1)[0] if "::" in mod else ""
                chain = (parent + "::" if parent else "") + m.group(1)
                r = resolve(chain.rstrip(":"), modules)
                if r is not None:
                    refs.add(r)
            for r in refs:
                if r and r != mod and not mod.startswith(r + "::"):
                    # A parent module file that only declares children is not a dependency.
                    edges[mod].add(r)
        # Tarjan's strongly connected components.
        index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    sccs.append(comp)

        sys.setrecursionlimit(10000)
        for v in sorted(edges):
            if v not in index:
                visit(v)
        for comp in sccs:
            bad = True
            print(f"{crate}: import cycle between " + ", ".join(sorted(comp)))
            for v in sorted(comp):
                print(f"    {v} -> " + ", ".join(sorted(w for w in edges[v] if w in comp)))
        if "-v" in sys.argv:
            for v in sorted(edges):
                print(f"{crate}: {v or '<root>'} -> {', '.join(sorted(edges[v]))}")
    sys.exit(1 if bad else 0)


main()
