from latprof.cli import main

main()
