"""The gateway's OpenAPI document and the gateway agree, under schemathesis (tests/schema_fuzzing.py).

It runs against the session stack's gateway with its real backends: a generated
chat request names a model by a random string (404) or carries no usable X-ray
(400), so no generated request makes a backend generate.
"""

from tests.conftest import gateway_url
from tests.schema_fuzzing import fuzz


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(stack):
    fuzz(gateway_url(stack))
