from redemption_core.demo.core import main

main()
