"""pyexecd conform: replays recorded Gemini code executions through pyexecd and compares.

Modules, one job each:

- cases.py       the case model and what a case needs (names, input files, tools, fidelity):
                 the rules of tests/conformance/test_replay.py, in one place
- recordings.py  reading the input formats (corpus JSONL, response bodies, JSON-array and
                 SSE streams, VCR / pytest-recording cassettes) into cases
- normalize.py   the normalization rules, each switchable
- compare.py     comparing a replay with its recording: exact, normalized, by shape; causes
- server.py      a pyexecd to replay through: one at --url, or one started here
- replay.py      running the cases concurrently, with a progress line
- report.py      the text report, --json and --junit
- record.py      --record: capturing new cases from a Gemini-compatible endpoint
- pyexecd_conform.py  the command line
"""
