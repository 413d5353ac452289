"""What runs inside the sandbox: the warm runner (standard library only) and
the shell scripts. Nothing here imports the rest of cellbox.
"""
