#!/usr/bin/env python3
"""Writes tests/fixtures/chat_templates/cases.json: the expected output (or error) of every chat
template case, rendered once by Python's jinja2 configured exactly as transformers renders chat
templates (transformers/utils/chat_template_utils.py: ImmutableSandboxedEnvironment with
trim_blocks=True, lstrip_blocks=True, the loopcontrols extension and {% generation %}; tojson as
json.dumps(ensure_ascii=False); raise_exception; strftime_now).

Cases: each template of tests/fixtures/chat_templates/templates/ with the conversations below,
and small templates, one per Jinja construct. tests/unit/test_chat_template.cpp renders every case
with magellano's renderer and compares byte for byte.

Developer-only (not CI). Run it in a throwaway venv:
  python3 -m venv /tmp/jinja-venv && /tmp/jinja-venv/bin/pip install jinja2
  /tmp/jinja-venv/bin/python scripts/chat_template_fixtures.py
With --bench it writes nothing and prints, as JSON lines, jinja2's median time per render of each
real template case (compiled once), the Python side of `magellano bench chat-template`.
"""
import json
import pathlib
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"


class Generation(Extension):
    """transformers' AssistantTracker, without the mask bookkeeping: {% generation %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


CHAT = [
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
SYSTEM = [{"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"}] + CHAT
UNICODE = [
    {"role": "system", "content": "  Réponds en français — 简体中文 ok.  \n"},
    {"role": "user", "content": "\tWhat is 2+2? 😀 \"quoted\" and 'single'\n"},
]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city (°C).",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
            "metric": {"type": "boolean", "default": True}, "note": {"type": ["string", "null"], "default": None}},
            "required": ["city"]}}},
]
TOOL_CHAT = [
    {"role": "user", "content": "What's the weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}]},
    {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
    {"role": "user", "content": "Thanks!"},
]
# A tool conversation as the server hands it to the template: OpenAI's shape (ids, tool_call_id,
# content null beside the calls) with each call's "arguments" JSON text turned into its object
# (src/serve/chat_request.cpp), two calls at once.
TOOL_CHAT_OPENAI = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Zürich and Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
    {"role": "tool", "tool_call_id": "call_a", "content": "{\"temperature\": 21.5}"},
    {"role": "tool", "tool_call_id": "call_b", "content": "{\"temperature\": 18}"},
]
PARTS = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]},
    {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
]

CONVERSATIONS = {
    "chat": {"messages": CHAT},
    "system": {"messages": SYSTEM},
    "unicode": {"messages": UNICODE},
    "no_generation_prompt": {"messages": SYSTEM, "add_generation_prompt": False},
    "tools": {"messages": TOOL_CHAT, "tools": TOOLS},
    "tools_openai": {"messages": TOOL_CHAT_OPENAI, "tools": TOOLS},
    "content_parts": {"messages": PARTS},
}

TEMPLATES = {
    "qwen2.5.jinja": ["chat", "system", "unicode", "no_generation_prompt", "tools", "tools_openai"],
    "llama3.1.jinja": ["chat", "system", "unicode", "no_generation_prompt", "tools", "tools_openai"],
    "mistral-instruct.jinja": ["chat", "system", "unicode", "tools"],
    "gemma.jinja": ["chat", "system", "unicode", "no_generation_prompt"],
    "zephyr.jinja": ["chat", "system", "unicode", "no_generation_prompt", "tools"],
    "granite4.0.jinja": ["chat", "system", "unicode", "no_generation_prompt", "tools", "content_parts", "tools_openai"],
}

D = {"a": 1, "b": [1, 2, 3], "s": "Hello World", "n": None, "f": 2.5, "t": True,
     "msgs": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
              {"role": "user", "content": "u2", "extra": {"k": "v"}}]}

# (name, template, variables): one Jinja construct each.
CONSTRUCTS = [
    # whitespace control and transformers' trim_blocks / lstrip_blocks
    ("ws_lstrip_trim", "a\n  {% if true %}\n  x\n  {% endif %}\nb", {}),
    ("ws_minus", "a  {%- if true -%}  x  {%- endif -%}  b", {}),
    ("ws_var_minus", "[ {{- ' v ' -}} ]\n", {}),
    ("ws_plus", "a\n  {%+ if true %}x{% endif +%}\nb", {}),
    ("ws_comment", "a\n  {# a comment #}\nb{# x -#}   c", {}),
    ("ws_var_no_lstrip", "a\n  {{ 'x' }}\nb", {}),
    ("ws_trailing_newline", "x\n", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("ws_raw", "{% raw %}{{ not rendered }}{% endraw %}!", {}),
    ("ws_block_in_line", "x {% if true %}y{% endif %} z\n", {}),
    # if / elif / else
    ("if_1", "{% if x > 2 %}big{% elif x > 1 %}mid{% else %}small{% endif %}", {"x": 1}),
    ("if_2", "{% if x > 2 %}big{% elif x > 1 %}mid{% else %}small{% endif %}", {"x": 2}),
    ("if_3", "{% if x > 2 %}big{% elif x > 1 %}mid{% else %}small{% endif %}", {"x": 3}),
    # for
    ("for_loop_vars", "{% for m in b %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }},{% endfor %}", D),
    ("for_else", "{% for m in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for m in msgs if m.role == 'user' %}{{ m.content }}{{ loop.length }}{% endfor %}", D),
    ("for_items", "{% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}={{ v }};{% endfor %}", {}),
    ("for_items_filter", "{% for k, v in msgs[2] | items %}{{ k }}:{{ v }};{% endfor %}", D),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("for_nested", "{% for i in [1, 2] %}{% set outer = loop %}{% for j in 'ab' %}{{ i }}{{ j }}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}", {}),
    ("for_dict_keys", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("for_prev_next_cycle", "{% for i in [1, 2, 3] %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }}{{ loop.cycle('o', 'e') }} {% endfor %}", {}),
    ("for_scope", "{% set c = 0 %}{% for i in [1, 2] %}{{ c }}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}", {}),
    ("for_undefined", "{% for x in nothing %}x{% else %}none{% endfor %}", {}),
    # set
    ("set_namespace", "{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("set_block", "{% set x %}\n  inside {{ 1 + 1 }}\n{% endset %}[{{ x }}]", {}),
    ("set_tuple", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}", {}),
    ("set_in_if", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    # macro / call
    ("macro", "{% macro f(a, b='x') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(2, b='y') }}{{ f(a=3) }}{{ f('q', 'r') }}", {}),
    ("macro_call", "{% macro box(t) %}<{{ t }}|{{ caller() }}>{% endmacro %}{% call box('T') %}body{% endcall %}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("generation", "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", D),
    # expressions
    ("lit", "{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1e3 }} {{ 2.0 }} {{ 1_000 }} {{ true }} {{ False }} {{ none }} {{ 'a' 'b' }}", {}),
    ("lit_containers", "{{ [1, 'a', none, true, 1.0, [2]] }} {{ {'a': 1, 'b': 'x'} }} {{ (1, 2) }} {{ (1,) }} {{ () }}", {}),
    ("lit_escapes", "{{ 'a\\tb\\\\n\\u00e9\\x41\\'\"' }}|{{ \"q'\\\"\" }}", {}),
    ("attr_item", "{{ msgs[0].role }} {{ msgs[1]['content'] }} {{ msgs.0.content }} {{ msgs[-1].extra.k }} {{ s[0] }} {{ s[-1] }}", D),
    ("slices", "{{ b[::-1] }} {{ b[1:] }} {{ b[:-1] }} {{ b[-2:] }} {{ b[::2] }} {{ s[::-1] }} {{ s[2:5] }} {{ 'héllo'[1:3] }} {{ 'héllo'[::-1] }} {{ b[5:] }}", D),
    ("compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ true == 1 }} {{ none == none }}", {}),
    ("logic", "{{ true and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ not 'a' in 'abc' }} {{ 'a' not in 'abc' }} {{ 2 in b }} {{ 'a' in {'a': 1} }} {{ none or false }}", D),
    ("tests", "{{ a is defined }} {{ zz is defined }} {{ zz is undefined }} {{ n is none }} {{ s is string }} {{ D is mapping }} {{ msgs[2] is mapping }} {{ b is iterable }} {{ s is iterable }} {{ a is number }} {{ f is float }} {{ a is integer }} {{ t is boolean }} {{ b is sequence }} {{ a is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ a is eq 1 }} {{ a is not none }} {{ s is lower }} {{ 'AB' is upper }} {{ t is true }} {{ raise_exception is callable }}", dict(D, D=D)),
    ("arith", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 // -2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ -2 ** 2 }} {{ 1 - 0.5 }} {{ 7.5 // 2 }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none ~ 2.50 }} {{ 1 + true }}", {}),
    ("ternary", "{{ 'y' if a else 'n' }} {{ 'y' if n else 'n' }} [{{ 'y' if n }}] {{ 'a' if false else 'b' if true else 'c' }}", D),
    ("precedence_concat_plus", "{{ 'x' ~ 1 + 2 }}", {}),
    ("precedence", "{{ 'x' ~ 2 * 3 }} {{ s | length + 1 }} {{ -a | abs }} {{ not a == 1 }} {{ b | length > 2 and s | lower == 'hello world' }}", D),
    # filters
    ("f_trim", "[{{ '  x \\n' | trim }}] [{{ 'xxaxx' | trim('x') }}]", {}),
    ("f_length", "{{ b | length }} {{ s | length }} {{ 'héllo' | length }} {{ msgs[2] | length }} {{ b | count }} {{ nothing | length }}", D),
    ("f_tojson", "{{ msgs | tojson }}\n{{ {'é': 'ü\\n\"\\t\\u0001', 'n': none, 'f': 1.5, 'i': -3, 'b': [true, false], 'e': [], 'o': {}} | tojson }}\n{{ D | tojson(indent=2) }}\n{{ 'x' | tojson }} {{ 1e-5 | tojson }} {{ 1.0 | tojson }} {{ 123456789012345678 | tojson }}", dict(D, D=D)),
    ("f_case", "{{ 'hello wORLD' | upper }} {{ 'Hello' | lower }} {{ 'hello wORLD' | capitalize }} {{ 'hello wORLD x2y' | title }}", {}),
    ("f_default", "{{ nothing | default('d') }} {{ n | default('d') }} {{ '' | default('d', true) }} {{ a | d(5) }} {{ nothing | default }}|", D),
    ("f_join", "{{ b | join(', ') }} {{ ['a', 'b'] | join }} {{ msgs | join('/', attribute='role') }}", D),
    ("f_first_last", "{{ b | first }} {{ b | last }} {{ s | first }} {{ s | last }} [{{ [] | first }}]", D),
    ("f_items_list", "{{ msgs[2] | items | list }} {{ 'ab' | list }} {{ {'x': 1} | list }}", D),
    ("f_replace", "{{ s | replace('o', '0') }} {{ s | replace('l', 'L', 2) }} {{ 'ab' | replace('', '-') }}", D),
    ("f_string_int_float", "{{ 12 | string ~ 'x' }} {{ '42' | int + 1 }} {{ ' 7 ' | int }} {{ 'x' | int }} {{ 'x' | int(9) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 2 | float }} {{ '3.7' | int }}", {}),
    ("f_select", "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} {{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='content') | list }} {{ msgs | selectattr('extra') | list | length }} {{ msgs | selectattr('extra', 'defined') | list | length }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} {{ [0, 1, '', 'a'] | select | list }}", D),
    ("f_map", "{{ ['a', 'b'] | map('upper') | join }} {{ msgs | map(attribute='extra.k', default='-') | list }} {{ ['1', '2'] | map('int') | sum }}", D),
    ("f_misc", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ msgs | sort(attribute='content') | map(attribute='content') | list }} {{ [1, 2, 1, 3] | unique | list }} {{ b | reverse | list }} {{ 'abc' | reverse }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ [1, 2.5] | sum }} {{ '<a>' | e }} {{ 'x' | safe }}", D),
    ("f_indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(3, blank=true) }}", {}),
    # str methods
    ("m_strip", "[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxyxx'.strip('x') }}][{{ '\\n\\tx\\n'.strip() }}]", {}),
    ("m_starts", "{{ s.startswith('He') }} {{ s.startswith('he') }} {{ s.endswith('ld') }} {{ s.startswith(('x', 'H')) }} {{ s.endswith(('x', 'y')) }}", D),
    ("m_split", "{{ '  a b\\t c  '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'l1\\nl2\\n'.splitlines() }}", {}),
    ("m_case_replace", "{{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD'.title() }} {{ 'hELLO'.capitalize() }} {{ s.replace('l', '_') }} {{ '-'.join(['a', 'b']) }} {{ s.find('o') }} {{ s.find('z') }} {{ s.count('l') }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ '  '.isspace() }}", D),
    # dict methods
    ("m_dict", "{{ msgs[2].get('role') }} {{ msgs[2].get('zz') }} {{ msgs[2].get('zz', 'dflt') }} {{ msgs[2].keys() | list }} {{ msgs[2].values() | list | length }} {% for k, v in msgs[2].items() %}{{ k }}{% endfor %}", D),
    ("m_dict_attr_vs_key", "{{ {'items': 1}['items'] }} {{ {'content': 'c'}.content }}", {}),
    # undefined
    ("undef", "[{{ missing }}] {{ missing is defined }} [{{ msgs[0].missing }}] [{{ b[10] }}] {{ missing | default('dflt') }} {{ not missing }}", D),
    ("undef_attr_error", "{{ missing.x }}", {}),
    ("undef_call_error", "{{ missing() }}", {}),
    # errors
    ("raise", "{% if true %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}", {}),
    ("err_unknown_filter", "{{ 'x' | frobnicate }}", {}),
    ("err_unknown_tag", "{% frobnicate %}", {}),
    ("err_unclosed_if", "{% if true %}x", {}),
    ("err_unclosed_var", "{{ 'x' ", {}),
    ("err_type_add", "{{ 'a' + 1 }}", {}),
    ("err_div_zero", "{{ 1 // 0 }}", {}),
    ("err_ns_assign", "{% set x = 1 %}{% set x.a = 2 %}", {}),
    ("err_include", "{% include 'other.jinja' %}", {}),
]


def render(env, source, variables):
    try:
        return {"expected": env.from_string(source).render(**variables)}
    except TemplateError as e:
        return {"error": type(e).__name__ + ": " + str(e)}
    except Exception as e:  # TypeError, ZeroDivisionError, ...: the template failed too
        return {"error": type(e).__name__ + ": " + str(e)}


def bench(env):
    import platform
    import statistics
    import time
    cases = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))["cases"]
    for c in cases:
        if "template_file" not in c or "expected" not in c:
            continue
        t = env.from_string((FIXTURES / "templates" / c["template_file"]).read_text(encoding="utf-8"))
        assert t.render(**c["variables"]) == c["expected"]
        runs = []
        for _ in range(6):  # one warm-up, then 5 timed runs of 200 renders (as the C++ benchmark)
            t0 = time.perf_counter()
            for _ in range(200):
                t.render(**c["variables"])
            runs.append((time.perf_counter() - t0) / 200)
        print(json.dumps({"name": "chat_template_render_jinja2", "device": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "jinja2": jinja2.__version__,
                          "sizes": {"case": c["name"], "output_bytes": len(c["expected"].encode())},
                          "median_s": statistics.median(runs[1:]), "us_per_render": statistics.median(runs[1:]) * 1e6}))


def main():
    env = environment()
    if "--bench" in sys.argv[1:]:
        bench(env)
        return
    cases = []
    for name, conversations in TEMPLATES.items():
        source = (FIXTURES / "templates" / name).read_text(encoding="utf-8")
        for conv in conversations:
            spec = CONVERSATIONS[conv]
            variables = {"messages": spec["messages"], "tools": spec.get("tools"), "documents": None,
                         "add_generation_prompt": spec.get("add_generation_prompt", True),
                         "bos_token": "<s>", "eos_token": "</s>"}
            case = {"name": f"{name}:{conv}", "template_file": name, "variables": variables}
            case.update(render(env, source, variables))
            cases.append(case)
    for name, source, variables in CONSTRUCTS:
        case = {"name": name, "template": source, "variables": variables}
        case.update(render(env, source, variables))
        cases.append(case)
    out = FIXTURES / "cases.json"
    out.write_text(json.dumps({"generator": "scripts/chat_template_fixtures.py", "jinja2": jinja2.__version__,
                               "cases": cases}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum(1 for c in cases if "error" in c)
    print(f"{out}: {len(cases)} cases ({errors} expected errors), jinja2 {jinja2.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
