from acrtask.cli.app import main

main()
