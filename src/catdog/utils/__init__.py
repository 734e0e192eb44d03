"""What every layer uses: configs and building objects from them, atomic files, progress lines, run records."""
