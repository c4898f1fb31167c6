import sys

from nebula_compile.cli import main

sys.exit(main())
