"""Write the message module of one namespace: StrEnums for enumerations, dataclasses for complex types."""

from __future__ import annotations

import keyword
import re

from .emit_codec import HEADER, MODULE_ALIAS
from .model import NAMESPACE_MODULES, ComplexType, Field, SchemaModel, SimpleType, local

_PY = {"nbit": "int", "uint": "int", "int": "int", "bool": "bool", "string": "str", "binary": "bytes"}


def member_name(value: str) -> str:
    name = re.sub(r"\W", "_", value)
    if name[0].isdigit():
        name = "V" + name
    return name + "_" if keyword.iskeyword(name) else name


class MessagesEmitter:
    def __init__(self, model: SchemaModel, namespace: str) -> None:
        self.model = model
        self.ns = namespace
        self.module = NAMESPACE_MODULES[namespace]
        self.types = sorted(
            (ct for ct in model.complex.values() if ct.namespace == namespace), key=lambda c: c.class_name
        )
        enums = {}
        for st in model.simple.values():
            if st.kind == "enum" and st.namespace == namespace:
                enums[st.enum_class] = st
        self.enums = [enums[k] for k in sorted(enums)]
        self.imports: set[str] = set()

    def ref(self, t: ComplexType | SimpleType) -> str:
        """Python expression naming the class of a type (or its Simple descriptor)."""
        if isinstance(t, ComplexType):
            return self._qualified(t.namespace, t.class_name)
        if t.kind == "enum":
            return self._qualified(t.namespace, t.enum_class)
        return _PY[t.kind]

    def _qualified(self, ns: str, name: str) -> str:
        if ns == self.ns:
            return name
        mod = NAMESPACE_MODULES[ns]
        self.imports.add(mod)
        return f"{MODULE_ALIAS[mod]}.{name}"

    def annotation(self, f: Field) -> str:
        names = []
        for t in f.types:
            r = self.ref(t)
            if r not in names:
                names.append(r)
        base = " | ".join(names)
        if f.repeated:
            return f"list[{base}]"
        if f.min_occurs == 0:
            return f"{base} | None"
        return base

    def simple_spec(self, t: SimpleType) -> str:
        enum = self.ref(t) if t.kind == "enum" else None
        args = [repr(local(t.key).replace("@anon", "")), repr(t.kind), repr(t.lexical)]
        for name in ("lo", "hi", "min_length", "max_length"):
            value = getattr(t, name)
            if value is not None:
                args.append(f"{name}={value}")
        if enum:
            args.append(f"enum={enum}")
        return f"Simple({', '.join(args)})"

    def emit(self) -> str:
        body: list[str] = []
        for st in self.enums:
            body += ["", "", f"class {st.enum_class}(StrEnum):", f'    """{local(st.key)} ({self.ns})."""', ""]
            body += [f"    {member_name(v)} = {v!r}" for v in st.values]
        for ct in self.types:
            body += [
                "",
                "",
                "@dataclass(slots=True, kw_only=True)",
                f"class {ct.class_name}(XsdType):",
                f'    """{ct.doc}."""',
                "",
            ]
            if not ct.fields:
                body.append("    pass")
            for f in ct.fields:
                ann = self.annotation(f)
                if f.repeated:
                    default = "" if f.min_occurs > 0 else " = field(default_factory=list)"
                elif f.min_occurs == 0:
                    default = " = None"
                else:
                    default = ""
                body.append(f"    {f.name}: {ann}{default}")
        meta = ["", "", "# schema metadata: element/attribute names and types of every field, in schema order"]
        for ct in self.types:
            specs = []
            for f in ct.fields:
                members = ", ".join(
                    f"({q!r}, {self.ref(t) if isinstance(t, ComplexType) else self.simple_spec(t)})"
                    for q, t in zip(f.qnames or [""], f.types, strict=True)
                )
                choice = f", choice={f.choice}, choice_required={f.choice_required}" if f.choice else ""
                specs.append(
                    f"    FieldSpec({f.name!r}, {f.kind!r}, ({members},), {f.min_occurs}, {f.max_occurs}{choice}),"
                )
            meta.append(f"{ct.class_name}.XSD_TYPE = {ct.key.replace('@anon', '')!r}")
            meta.append(f"{ct.class_name}.XSD_ABSTRACT = {ct.abstract}")
            meta.append(f"{ct.class_name}.XSD_FIELDS = (" if specs else f"{ct.class_name}.XSD_FIELDS = ()")
            if specs:
                meta += specs + [")"]
        globals_ = []
        for schema in self.model.schemas.values():
            for q, e in SchemaModel.global_elements(schema).items():
                t = self.model.element_type(e, q)
                if isinstance(t, ComplexType) and t.namespace == self.ns and (q, t.class_name) not in globals_:
                    globals_.append((q, t.class_name))
        meta += ["", "# global elements of this namespace -> class", "ELEMENTS = {"]
        meta += [f"    {q!r}: {c}," for q, c in sorted(globals_)] + ["}"]
        head = [HEADER.format(what=self.ns), "from __future__ import annotations", ""]
        head.append("from dataclasses import dataclass, field  # noqa: F401")
        if self.enums:
            head.append("from enum import StrEnum")
        head.append("")
        head += [f"from stack.messages import {m} as {MODULE_ALIAS[m]}" for m in sorted(self.imports)]
        head.append("from stack.messages._schema import FieldSpec, Simple, XsdType  # noqa: F401")
        return "\n".join(head + body + meta) + "\n"
