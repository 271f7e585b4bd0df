package cli

import (
	"os/exec"
	"runtime"
)

func (a *App) openBrowser(url string) error {
	if a.OpenBrowser != nil {
		return a.OpenBrowser(url)
	}
	return openSystemBrowser(url)
}

// openSystemBrowser hands url to the desktop's opener. On Windows,
// rundll32's FileProtocolHandler rather than `cmd /c start`: cmd would
// split the URL at its '&'s.
func openSystemBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; the browser outlives it
	return nil
}
