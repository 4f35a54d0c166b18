from mhsft.cli import main

main()
