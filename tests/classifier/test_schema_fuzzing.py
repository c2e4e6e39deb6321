"""The worker's OpenAPI document and the worker agree, under schemathesis (tests/schema_fuzzing.py)."""

from tests.schema_fuzzing import fuzz


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(classifier_url):
    fuzz(classifier_url, max_examples=10)
