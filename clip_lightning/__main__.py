from clip_lightning.cli import main

main()
