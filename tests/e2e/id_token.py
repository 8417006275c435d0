"""Print an ID token for the local test user: `just token`."""

import sys

from target import Target

if __name__ == "__main__":
    target = Target.from_file(sys.argv[1] if len(sys.argv) > 1 else ".local/outputs.json")
    print(target.id_token())
