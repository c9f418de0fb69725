from twingan.cli import app

app()
