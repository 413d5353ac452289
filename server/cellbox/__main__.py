"""`python -m cellbox` serves LSP over stdio, like `cellbox serve`."""

from cellbox.main import main

if __name__ == "__main__":
    main()
