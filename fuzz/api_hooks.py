"""schemathesis hooks for fuzz/api.sh: the run keeps its own credentials.

Any admin may revoke any token, the one it calls with included. Schemathesis finds the run's
own token ids in `GET /api/v1/tokens` and, in its stateful phase, revokes them; every later
request then gets 401 and reaches no handler. This hook points such a revocation at a token id
that does not exist (404) instead. Revoking every other token is still fuzzed.
"""

import os

import schemathesis

KEEP = {token for token in os.environ.get("SLUICE_FUZZ_KEEP", "").split(",") if token}
ABSENT = "tok_0000000000000000"


@schemathesis.hook
def before_call(context, case, kwargs):
    if (
        case.method.upper() == "DELETE"
        and case.path == "/api/v1/tokens/{id}"
        and case.path_parameters.get("id") in KEEP
    ):
        case.path_parameters["id"] = ABSENT
