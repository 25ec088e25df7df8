package lifecycle

import (
	"fmt"
	"time"

	"github.com/pigp/pigp"
	"github.com/pigp/pigp/apa"
)

// The messages never carry personal data from the files: only the file's
// name, its document type and dates.

func responseMessage(r *pigp.Response, portal string) (string, string) {
	subject := "APA – " + r.DocType + " disponible : " + r.Name
	body := fmt.Sprintf(`Bonjour,

Le fichier %s (%s) est disponible depuis le %s dans l'espace de retrait
(/retrait) du SIRET %s.

Il restera disponible jusqu'au %s à %s ; au-delà, il sera supprimé du serveur.
`, r.Name, r.DocType, frenchDate(r.AvailableAt), r.SIRET, frenchDate(r.ExpiresAt), r.ExpiresAt.In(apa.Paris).Format("15:04"))
	if portal != "" {
		body += "\nPortail : " + portal + "\n"
	}
	body += signature
	return subject, body
}

func passwordReminderMessage(a *pigp.Account, now time.Time, portal string) message {
	when := "dans " + fmt.Sprint(pigp.DaysUntil(now, a.PasswordExpiresAt)) + " jours"
	switch pigp.DaysUntil(now, a.PasswordExpiresAt) {
	case 0:
		when = "aujourd'hui"
	case 1:
		when = "demain"
	}
	body := fmt.Sprintf(`Bonjour,

Le mot de passe de l'identifiant %s expire %s, le %s.

Pensez à le modifier avant cette date, depuis le menu « Accéder au changement
de mot de passe » du portail. Après expiration, le Conseil départemental devra
prendre l'attache de sa paierie départementale.
`, a.Login, when, frenchDate(a.PasswordExpiresAt))
	if portal != "" {
		body += "\nPortail : " + portal + "\n"
	}
	return message{"APA – Votre mot de passe expire le " + frenchDate(a.PasswordExpiresAt), body + signature}
}

func passwordExpiredMessage(a *pigp.Account) message {
	body := fmt.Sprintf(`Bonjour,

Le mot de passe de l'identifiant %s a expiré le %s.

Le Conseil départemental est invité à prendre l'attache de sa paierie
départementale pour obtenir un nouveau mot de passe.
`, a.Login, frenchDate(a.PasswordExpiresAt))
	return message{"APA – Votre mot de passe a expiré", body + signature}
}

const signature = `
Ce message est envoyé automatiquement, merci de ne pas y répondre.
Direction Générale des Finances Publiques – échange APA
`
