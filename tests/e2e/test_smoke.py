async def test_python_block_runs(workspace, start_daemon):
    daemon = await start_daemon(workspace)
    result = await daemon.execute(("python", "print(1)"))
    print(result)
    assert result["exitCode"] == 0
