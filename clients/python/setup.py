"""Generates wald.proto (flatc --python from protocol/wald.fbs) into the
build, so that no generated code is in git. Needs flatc (Debian's
flatbuffers-compiler) when the package is built."""

import os
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "protocol", "wald.fbs")


class BuildWithProto(build_py):
    def run(self):
        super().run()
        with tempfile.TemporaryDirectory() as gen:
            subprocess.run(["flatc", "--python", "-o", gen, SCHEMA], check=True)
            target = os.path.join(self.build_lib, "wald", "proto")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(gen, "wald", "proto"), target)


setup(cmdclass={"build_py": BuildWithProto})
