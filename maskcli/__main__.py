from maskcli.cli import run

run()
