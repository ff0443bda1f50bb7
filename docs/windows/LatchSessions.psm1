# LatchSessions: lets Latch's rdp-servers integration end a revoked account's RDP sessions.
#
# Latch lends guests cmdlets, never a program runner, and no built-in cmdlet logs another
# user's session off (logoff.exe and Invoke-CimMethod would run anything). An administrator who
# wants sessions ended at revoke installs this module (read it first: it is all there is),
# e.g. in C:\Program Files\WindowsPowerShell\Modules\LatchSessions\LatchSessions.psm1, lists
# Disconnect-LatchSession under [integration.winrm] change, and sets the integration's
# `session_logoff_cmdlet = "Disconnect-LatchSession"`.
#
# NOT RUN ON WINDOWS HERE: Latch's tests check that revoke calls it with the account's name
# (against the Windows stand-in); this module's own behaviour is untested. quser's columns are
# USERNAME SESSIONNAME ID STATE IDLE LOGON-TIME, and SESSIONNAME is empty for a disconnected
# session, so the ID is the second or the third field.

function Disconnect-LatchSession {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [ValidatePattern('^[A-Za-z0-9_.-]{1,20}$')]
        [string]$UserName
    )
    $lines = @(quser.exe 2>$null | Select-Object -Skip 1)
    foreach ($line in $lines) {
        $fields = ($line.Trim() -replace '^>', '') -split '\s+'
        if ($fields.Count -lt 3 -or $fields[0] -ine $UserName) { continue }
        $id = if ($fields[1] -match '^\d+$') { $fields[1] } else { $fields[2] }
        if ($id -notmatch '^\d+$') { continue }
        logoff.exe $id
        [pscustomobject]@{ UserName = $UserName; SessionId = [int]$id }
    }
}

Export-ModuleMember -Function Disconnect-LatchSession
