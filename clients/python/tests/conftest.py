"""Makes the package importable straight from the tree: clients/python on
sys.path, and the flatc-generated wald.proto in $WALD_PYTHON_GEN (made here
with flatc --python if it is not set). $WALD_BINARY names the daemon."""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
if not os.environ.get("WALD_PYTHON_GEN"):
    gen = tempfile.mkdtemp(prefix="wald-python-gen-")
    schema = os.path.join(ROOT, "..", "..", "protocol", "wald.fbs")
    subprocess.run(["flatc", "--python", "-o", gen, schema], check=True)
    os.environ["WALD_PYTHON_GEN"] = gen
