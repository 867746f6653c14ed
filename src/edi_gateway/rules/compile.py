"""Official Schematron (``.sch``, XSLT 2 query binding) -> one XSLT 3.0 stylesheet that runs in
linear time.

The official XSLT files are made by the ISO skeleton. Run as they are, they cost seconds per
20,000 order lines and minutes when every line fails (ADR 0023): every pattern walks the whole
tree on its own, every element is tried against hundreds of absolute-path match patterns in
priority order, and each failure's location counts its preceding siblings. This compiler keeps
the rules' semantics exactly (the same contexts, the same tests in the same context, the same
first-matching-rule-per-pattern order, the same lets, keys and functions) and changes only how
the tree is walked:

* one walk visits every element and attribute once and gives each pattern its turn there;
* a pattern whose rule contexts are all plain absolute paths (``/ubl:Order/cac:OrderLine/*``,
  the "closed structure" patterns) finds its rule by the element's path in a map, instead of
  trying each match pattern in turn; other patterns use ordinary template matching;
* the walk carries each element's position among its same-named siblings, so a location costs
  its depth, not its position.

The output is text, one line per finding: the assertion's number, a tab, its location
(``/Q{ns}local[n]/...``). The texts, IDs and flags stay in Python (:class:`Assertion`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from lxml import etree

from edi_gateway.rules.assertion import Assertion

SCH = "http://purl.oclc.org/dsdl/schematron"
XSL = "http://www.w3.org/1999/XSL/Transform"
OURS = "urn:edi-gateway:rules"
_S = f"{{{SCH}}}"
_PLAIN_PATH = re.compile(r"^(?:/[A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*)+(?:/\*)?$")
_CODE_LIST = re.compile(r"^\s*tokenize\(\s*'[^']*'\s*,\s*'\\s\+?'\s*\)\s*$")
_MEMBER = re.compile(
    r"some \$(?P<v>[\w.-]+) in \$(?P<list>[\w.-]+) satisfies \$(?P=v) = "
    r"(?P<value>normalize-space\(text\(\)\)|@[\w.:-]+)(?=\))"
)
_SPAN = 4096
_NONE = _SPAN - 1  # no rule for this element in this pattern
_RESERVED = ("xsl", "xs", "map", "e")
_STRINGS = re.compile(r"'[^']*'|\"[^\"]*\"")


class SchematronError(ValueError):
    """The file is not a Schematron schema this compiler understands."""


@dataclass(slots=True)
class _Rule:
    context: str
    lets: list[tuple[str, str]]
    checks: list[tuple[int, str, bool]]  # (assertion number, test, is a report)


@dataclass(slots=True)
class _Pattern:
    rules: list[_Rule] = field(default_factory=list)

    def plain(self) -> bool:
        """Every context an absolute path of prefixed element names (maybe ending in ``/*``)."""
        return bool(self.rules) and all(_PLAIN_PATH.match(r.context) for r in self.rules)

    def sees_attributes(self) -> bool:
        """Whether a rule could match an attribute (an ``@`` outside predicates and strings)."""
        return any(
            "@" in _outside_predicates(r.context) or "attribute::" in r.context for r in self.rules
        )


@dataclass(slots=True)
class Compiled:
    """The stylesheet text and the assertions its output numbers refer to."""

    title: str
    xslt: str
    assertions: list[Assertion]


def _lit(text: str) -> str:
    """An XPath string literal."""
    return "'" + text.replace("'", "''") + "'"


def _outside_predicates(expr: str) -> str:
    text = _STRINGS.sub("''", expr)
    out, depth = [], 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def read_schematron(path: Path) -> etree._ElementTree:
    """Parse a ``.sch`` file safely (no DTD, no entities, no network)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    tree = etree.parse(str(path), parser)
    root = tree.getroot()
    if root.tag != f"{_S}schema":
        raise SchematronError(f"{path.name}: the root is {root.tag}, not an ISO Schematron schema")
    if (root.get("queryBinding") or "xslt2").lower() not in ("xslt2", "xslt3"):
        raise SchematronError(
            f"{path.name}: query binding {root.get('queryBinding')!r} unsupported"
        )
    return tree


def compile_schematron(path: Path) -> Compiled:
    """Compile one ``.sch`` file (include-resolved, as releases publish them)."""
    root = read_schematron(path).getroot()
    namespaces: dict[str, str] = {}
    for element in root.iter():
        for prefix, uri in element.nsmap.items():
            if prefix and prefix not in _RESERVED:
                namespaces.setdefault(prefix, uri)
    for ns in root.iter(f"{_S}ns"):
        if ns.get("prefix") not in _RESERVED:
            namespaces[ns.get("prefix", "")] = ns.get("uri", "")
    assertions: list[Assertion] = []
    patterns: list[_Pattern] = []
    global_lets: list[tuple[str, str]] = [
        (let.get("name", ""), let.get("value", "")) for let in root.findall(f"{_S}let")
    ]
    for pattern_el in root.iter(f"{_S}pattern"):
        if pattern_el.get("abstract") == "true" or pattern_el.get("is-a"):
            raise SchematronError(f"{path.name}: abstract patterns are not supported")
        pattern = _Pattern()
        global_lets += [
            (let.get("name", ""), let.get("value", "")) for let in pattern_el.findall(f"{_S}let")
        ]
        for rule_el in pattern_el.findall(f"{_S}rule"):
            pattern.rules.append(_rule(path, rule_el, assertions))
        patterns.append(pattern)
    names = [name for name, _ in global_lets]
    if len(set(names)) != len(names):
        raise SchematronError(f"{path.name}: a let name is defined twice")
    foreign = [
        etree.tostring(el, encoding="unicode")
        for el in root
        if isinstance(el.tag, str) and el.tag.startswith(f"{{{XSL}}}")
    ]
    title = " ".join("".join(root.findtext(f"{_S}title") or path.stem).split())
    xslt = _stylesheet(namespaces, global_lets, foreign, patterns)
    return Compiled(title=title, xslt=xslt, assertions=assertions)


def _rule(path: Path, rule_el: etree._Element, assertions: list[Assertion]) -> _Rule:
    if rule_el.get("abstract") == "true" or rule_el.find(f"{_S}extends") is not None:
        raise SchematronError(f"{path.name}: abstract rules are not supported")
    context = rule_el.get("context")
    if not context:
        raise SchematronError(f"{path.name}: a rule without a context")
    rule = _Rule(context=context, lets=[], checks=[])
    for child in rule_el:
        if child.tag == f"{_S}let":
            rule.lets.append((child.get("name", ""), child.get("value", "")))
        elif child.tag in (f"{_S}assert", f"{_S}report"):
            if len(child):
                raise SchematronError(
                    f"{path.name}: {child.get('id')}: dynamic assertion text is not supported"
                )
            text = " ".join((child.text or "").split())
            flag = child.get("flag") or rule_el.get("flag") or "fatal"
            report = child.tag == f"{_S}report"
            rule.checks.append((len(assertions), child.get("test", ""), report))
            assertions.append(Assertion(child.get("id") or "", flag, text, report))
    return rule


def _stylesheet(
    namespaces: dict[str, str],
    lets: list[tuple[str, str]],
    foreign: list[str],
    patterns: list[_Pattern],
) -> str:
    plain = [k for k, p in enumerate(patterns) if p.plain()]
    decls = " ".join(f"xmlns:{p}={quoteattr(u)}" for p, u in sorted(namespaces.items()))
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:map="http://www.w3.org/2005/xpath-functions/map" '
        f'xmlns:e="{OURS}" {decls} exclude-result-prefixes="#all">',
        '<xsl:output method="text" encoding="UTF-8"/>',
        *foreign,
        *(f"<xsl:variable name={quoteattr(n)} select={quoteattr(v)}/>" for n, v in lets),
        _LOCATION.replace("{document}", document_rules(patterns, plain)).replace(
            "{roots}", "".join(f'<xsl:with-param name="s{k}" select="0"/>' for k in plain)
        ),
    ]
    for k in plain:
        out += _trie(k, patterns[k], namespaces)
    out.append(_walk(patterns, plain))
    sets = _code_sets(lets)
    for name, set_name in sets.items():
        out.append(
            f"<xsl:variable name={quoteattr(set_name)} "
            f'select="map:merge(${name} ! map{{string(.): true()}})"/>'
        )
    for k, pattern in enumerate(patterns):
        out += _pattern(k, pattern, k in plain, sets)
    out.append("</xsl:stylesheet>")
    return "\n".join(out)


_LOCATION = """\
<xsl:accumulator name="e:n" as="xs:integer" initial-value="0">
  <xsl:accumulator-rule match="*" select="$value + 1"/>
</xsl:accumulator>
<xsl:mode use-accumulators="#all"/>
<xsl:function name="e:loc" as="xs:string">
  <xsl:param name="n" as="node()"/>
  <xsl:sequence select="if ($n instance of attribute())
      then concat($n/..!accumulator-before('e:n'), '&#9;@Q{',
                  namespace-uri($n), '}', local-name($n))
      else if ($n instance of element()) then concat($n!accumulator-before('e:n'), '&#9;')
      else '0&#9;'"/>
</xsl:function>
<xsl:template match="/">
  {document}
  <xsl:apply-templates select="*" mode="e:walk">{roots}</xsl:apply-templates>
</xsl:template>
"""


def _trie(k: int, pattern: _Pattern, namespaces: dict[str, str]) -> list[str]:
    """A plain pattern as a trie of element names: state -> child name -> state, with the rule
    of each state's own path and of its ``/*`` (the first rule of a context wins, as in the
    skeleton's priorities). The walk carries each element's state: one lookup per element."""
    states: dict[tuple[str, ...], int] = {(): 0}
    edges: dict[int, dict[str, int]] = {0: {}}
    exact: dict[int, int] = {}
    wild: dict[int, int] = {}
    for i, rule in enumerate(pattern.rules):
        steps = tuple(rule.context.split("/")[1:])
        star = steps[-1] == "*"
        path = steps[:-1] if star else steps
        for depth in range(1, len(path) + 1):
            if path[:depth] not in states:
                states[path[:depth]] = len(states)
                edges[len(states) - 1] = {}
            parent, here = states[path[: depth - 1]], states[path[:depth]]
            prefix, local = path[depth - 1].split(":")
            if prefix not in namespaces:
                raise SchematronError(f"{rule.context}: the prefix {prefix!r} is not declared")
            edges[parent][f"QName({_lit(namespaces[prefix])}, {_lit(local)})"] = here
        (wild if star else exact).setdefault(states[path], i)

    if len(pattern.rules) >= _NONE:
        raise SchematronError(
            f"a pattern of {len(pattern.rules)} rules is more than this compiler takes"
        )

    def step(here: int, there: int) -> int:  # the child's state and rule, in one integer
        rule = min(exact.get(there, _NONE), wild.get(here, _NONE))
        return there * _SPAN + rule

    def xpath_map(entries: dict[int, str]) -> str:
        return "map{" + ", ".join(f"{key}: {value}" for key, value in entries.items()) + "}"

    nexts = {
        s: "map{" + ", ".join(f"{q}: {step(s, t)}" for q, t in e.items()) + "}"
        for s, e in edges.items()
    }
    tables = {f"e:next{k}": nexts, f"e:wild{k}": {s: str(r) for s, r in wild.items()}}
    return [
        f'<xsl:variable name="{name}" select={quoteattr(xpath_map(entries))}/>'
        for name, entries in tables.items()
    ]


def _walk(patterns: list[_Pattern], plain: list[int]) -> str:
    params, here, attrs, down = [], [], [], []
    for k, pattern in enumerate(patterns):
        if k in plain:
            params.append(f'<xsl:param name="s{k}" as="xs:integer?"/>')
            here.append(
                f'<xsl:variable name="v{k}" as="xs:integer?" select="if (exists($s{k})) '
                f'then $e:next{k}($s{k})(node-name(.)) else ()"/>'
                f'<xsl:variable name="r{k}" as="xs:integer?" select="if (exists($v{k})) then '
                f'$v{k} mod {_SPAN} else if (exists($s{k})) then $e:wild{k}($s{k}) else ()"/>'
                f'<xsl:if test="exists($r{k}) and $r{k} ne {_NONE}"><xsl:call-template '
                f'name="e:p{k}"><xsl:with-param name="r" select="$r{k}"/></xsl:call-template>'
                "</xsl:if>"
            )
            down.append(
                f'<xsl:with-param name="s{k}" select="if (exists($v{k})) then $v{k} idiv '
                f'{_SPAN} else ()"/>'
            )
        else:
            here.append(f'<xsl:apply-templates select="." mode="e:m{k}"/>')
            if pattern.sees_attributes():
                attrs.append(f'<xsl:apply-templates select="." mode="e:m{k}"/>')
    on_attributes = f'<xsl:for-each select="@*">{"".join(attrs)}</xsl:for-each>' if attrs else ""
    return f"""\
<xsl:template match="*" mode="e:walk">
  {"".join(params)}
  {"".join(here)}
  {on_attributes}
  <xsl:apply-templates select="*" mode="e:walk">{"".join(down)}</xsl:apply-templates>
</xsl:template>"""


def _code_sets(lets: list[tuple[str, str]]) -> dict[str, str]:
    """Global lets that are fixed code lists (``tokenize('A B C', '\\s')``): name -> set name."""
    return {name: f"e:set-{name}" for name, value in lets if _CODE_LIST.match(value)}


def _membership(test: str, sets: dict[str, str], shadowed: set[str]) -> str:
    """``some $c in $list satisfies $c = X`` over a fixed code list -> one hash lookup.

    The same truth value: X is one string (``normalize-space(text())``) or an attribute (its
    string value; absent = false), compared by codepoints as ``=`` does for untyped values.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match["list"]
        if name not in sets or name in shadowed:
            return match[0]
        value = match["value"]
        if value.startswith("@"):
            return f"exists({value}[map:contains(${sets[name]}, string(.))])"
        return f"map:contains(${sets[name]}, {value})"

    return _MEMBER.sub(lookup, test)


def _checks(rule: _Rule, sets: dict[str, str]) -> str:
    parts = [f"<xsl:variable name={quoteattr(n)} select={quoteattr(v)}/>" for n, v in rule.lets]
    shadowed = {n for n, _ in rule.lets}
    for number, raw, report in rule.checks:
        test = _membership(raw, sets, shadowed)
        condition = f"({test})" if report else f"not(({test}))"
        parts.append(
            f"<xsl:if test={quoteattr(condition)}>"
            f"<xsl:value-of select=\"'{number}&#9;' || e:loc(.) || '&#10;'\"/></xsl:if>"
        )
    return "".join(parts)


def _pattern(k: int, pattern: _Pattern, plain: bool, sets: dict[str, str]) -> list[str]:
    if plain:
        return [_dispatch(k, pattern, sets)]
    out = [
        f'<xsl:mode name="e:m{k}" on-no-match="deep-skip"/>',
        f'<xsl:template match="document-node()" mode="e:m{k}" priority="-9"/>',
    ]
    top = len(pattern.rules)
    for i, rule in enumerate(pattern.rules):
        out.append(
            f'<xsl:template match={quoteattr(rule.context)} mode="e:m{k}" '
            f'priority="{top - i}">'
            f"{_checks(rule, sets)}</xsl:template>"
        )
    return out


def _dispatch(k: int, pattern: _Pattern, sets: dict[str, str]) -> str:
    """A named template choosing rule ``$r`` of a plain pattern by halving (depth log2 n)."""

    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            return _checks(pattern.rules[lo], sets)
        mid = (lo + hi) // 2
        return (
            f'<xsl:choose><xsl:when test="$r le {mid}">{tree(lo, mid)}</xsl:when>'
            f"<xsl:otherwise>{tree(mid + 1, hi)}</xsl:otherwise></xsl:choose>"
        )

    return (
        f'<xsl:template name="e:p{k}"><xsl:param name="r" as="xs:integer"/>'
        f"{tree(0, len(pattern.rules) - 1)}"
        "</xsl:template>"
    )


def document_rules(patterns: list[_Pattern], plain: list[int]) -> str:
    """Generic patterns applied to the document node itself (a rule context of ``/``)."""
    return "".join(
        f'<xsl:apply-templates select="." mode="e:m{k}"/>'
        for k in range(len(patterns))
        if k not in plain
    )


__all__ = ["Assertion", "Compiled", "SchematronError", "compile_schematron"]
