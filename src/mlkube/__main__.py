from mlkube.cli import main

main()
