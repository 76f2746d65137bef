"""Bad input: one clear `livefuse: error:` line (or argparse's usage error), exit 2, never a traceback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests_support_marker import __doc__ as _  # noqa: F401  (placeholder removed below)
