"""`python -m notify.sealing FILE` writes a new sealing key into FILE (once; an existing file is kept): the key notify
seals webhook secrets with (ticketstream_shared.sealing)."""

import sys
from pathlib import Path

from ticketstream_shared.sealing import write_key

if __name__ == "__main__":
    print(write_key(Path(sys.argv[1])))
