"""What runs inside the sandbox: the warm runner (runner.py and the modules it
imports, standard library only, shipped as one program by ship.py) and the
shell scripts. Nothing here imports the rest of cellbox.
"""
