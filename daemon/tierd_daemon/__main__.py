import sys

from tierd_daemon.cli import main

sys.exit(main())
