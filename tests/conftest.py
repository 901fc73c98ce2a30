import os

from tests.support import OTEL_ENV, inherited_unwanted

# Before any test module is imported, so no channel or child sees them: the
# test process's own clients must not reach a proxy or a collector unless a
# test asks for it (children get the same from tests/support.child_env).
for _name in [n for n in os.environ if inherited_unwanted(n)]:
    del os.environ[_name]
os.environ.update(OTEL_ENV)
