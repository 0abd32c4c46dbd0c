from mlexam.cli import main

main()
