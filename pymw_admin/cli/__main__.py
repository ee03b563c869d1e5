from pymw_admin.cli import main

main()
