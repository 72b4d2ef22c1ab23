import sys

from lambda_provider.cli.main import main

sys.exit(main())
