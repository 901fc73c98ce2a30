import os

# The test process's own clients must not send spans anywhere unless a test
# asks for it (children get the same default from tests/support.child_env).
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
